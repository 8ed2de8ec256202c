package dev.graft.tools.cli;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The model a command reads when given none: the real pretrained all-MiniLM-L6-v2 (opset 11, 637
 * nodes), embedded in the jar. It lets a fresh checkout run {@code graft inspect} with no file.
 */
final class DefaultModel {
  static final String NAME = "all-MiniLM-L6-v2 (embedded)";
  private static final String RESOURCE = "all-minilm-l6-v2.onnx";

  private DefaultModel() {}

  /**
   * The model file on disk.
   *
   * <p>LOCAL STAND-IN: switch to {@code dev.graft.fixtures.PretrainedModels.miniLm()} once it is
   * on main; until then this extracts the classpath resource to a temporary folder that is
   * deleted when the JVM exits.
   */
  static Path path() {
    try (InputStream in = DefaultModel.class.getClassLoader().getResourceAsStream(RESOURCE)) {
      if (in == null) {
        throw new UserError(
            "The embedded model '"
                + RESOURCE
                + "' is not on the classpath. Rebuild with 'mvn -q package -DskipTests', or give"
                + " a MODEL path.");
      }
      Path dir = Files.createTempDirectory("graft-minilm");
      Path file = dir.resolve(RESOURCE);
      Files.copy(in, file);
      file.toFile().deleteOnExit();
      dir.toFile().deleteOnExit();
      return file;
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot extract the embedded model '" + RESOURCE + "'", e);
    }
  }
}
