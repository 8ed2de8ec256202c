package dev.graft.tools.cli;

import dev.graft.fixtures.PretrainedModels;
import java.nio.file.Path;

/**
 * The model a command reads when given none: the real pretrained all-MiniLM-L6-v2 (opset 11, 637
 * nodes), embedded in the jar. It lets a fresh checkout run {@code graft inspect} with no file.
 */
final class DefaultModel {
  static final String NAME = "all-MiniLM-L6-v2 (embedded)";

  private DefaultModel() {}

  /** The model file, copied once from the jar into Graft's cache folder ($GRAFT_CACHE). */
  static Path path() {
    return PretrainedModels.miniLm();
  }
}
