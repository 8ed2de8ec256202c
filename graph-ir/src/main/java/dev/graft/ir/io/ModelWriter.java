package dev.graft.ir.io;

import dev.graft.ir.Model;
import java.nio.file.Path;

final class ModelWriter {
  private ModelWriter() {}

  static byte[] toBytes(Model model) {
    throw new UnsupportedOperationException("being written");
  }

  static void write(Model model, Path path, SaveOptions options) {
    throw new UnsupportedOperationException("being written");
  }
}
