package dev.graft.tools.cli;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Checks on the paths a command reads and writes, made before the library runs so that the
 * common mistakes get a message about the path rather than about what failed deep inside.
 */
final class ModelPaths {
  private ModelPaths() {}

  /** Throws a {@link UserError} unless {@code model} is a readable regular file. */
  static Path requireReadableModel(Path model) {
    if (!Files.exists(model)) {
      throw new UserError("Cannot read model '" + model + "': no such file. Check the path.");
    }
    if (Files.isDirectory(model)) {
      throw new UserError(
          "Cannot read model '" + model + "': it is a folder. Give the .onnx file inside it.");
    }
    if (!Files.isReadable(model)) {
      throw new UserError(
          "Cannot read model '" + model + "': permission denied. Check the file's permissions.");
    }
    return model;
  }

  /**
   * Throws a {@link UserError} unless a file can be written at {@code target}: its folder exists
   * and is writable, and the target itself is not a folder.
   */
  static Path requireWritableTarget(Path target) {
    if (Files.isDirectory(target)) {
      throw new UserError(
          "Cannot write model to '"
              + target
              + "': it is a folder. Give a file name, e.g. '"
              + target.resolve("model.onnx")
              + "'.");
    }
    Path folder = target.toAbsolutePath().getParent();
    if (folder == null || !Files.exists(folder)) {
      throw new UserError(
          "Cannot write model to '"
              + target
              + "': folder '"
              + folder
              + "' does not exist. Create it first.");
    }
    if (!Files.isDirectory(folder)) {
      throw new UserError(
          "Cannot write model to '"
              + target
              + "': '"
              + folder
              + "' is a file, not a folder. Choose an output path inside a folder.");
    }
    if (!Files.isWritable(folder)) {
      throw new UserError(
          "Cannot write model to '"
              + target
              + "': folder '"
              + folder
              + "' is not writable. Check its permissions or choose another folder.");
    }
    return target;
  }
}
