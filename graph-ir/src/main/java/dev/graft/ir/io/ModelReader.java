package dev.graft.ir.io;

import dev.graft.ir.Model;
import java.nio.file.Path;

final class ModelReader {
  private ModelReader() {}

  static Model read(Path path) {
    throw new UnsupportedOperationException("being written");
  }

  static Model read(byte[] bytes, Path baseDir, String origin) {
    throw new UnsupportedOperationException("being written");
  }
}
