package dev.graft.ir.io;

import dev.graft.ir.Model;
import java.nio.file.Path;

/**
 * Load and save ONNX models: the only entry point to the protobuf world.
 *
 * <p>Load is lossless: fields the IR does not model are kept as opaque extras and written back.
 * External data is checked to stay inside the model's folder and is mapped lazily. Save writes a
 * temporary file in the target folder and moves it into place, so a failed save leaves what was
 * there untouched; before it replaces a data file that tensors of the model still read, it maps
 * those tensors, so they keep their data.
 */
public final class ModelIO {
  private ModelIO() {}

  /** Loads a model file; external data is resolved against the file's folder. */
  public static Model load(Path path) {
    return ModelReader.read(path);
  }

  /** Parses model bytes; external data, if any, is resolved against {@code baseDir}. */
  public static Model fromBytes(byte[] bytes, Path baseDir) {
    return ModelReader.read(bytes, baseDir, "<bytes>");
  }

  /** Serializes with every tensor inline (for ORT sessions made from bytes). */
  public static byte[] toBytes(Model model) {
    return ModelWriter.toBytes(model);
  }

  /** Saves keeping each tensor where it is (see {@link SaveOptions#keep()}). */
  public static void save(Model model, Path path) {
    save(model, path, SaveOptions.keep());
  }

  public static void save(Model model, Path path, SaveOptions options) {
    ModelWriter.write(model, path, options);
  }

  /**
   * Saves as {@link #save(Model, Path)} does, but points external tensors at the data files that hold
   * them instead of copying them (files elsewhere are hard-linked into the target's folder; see
   * {@link LinkedSave}); returns the names of the linked files there.
   */
  public static java.util.List<String> saveLinked(Model model, Path path) {
    return LinkedSave.save(model, path, SaveOptions.keep()).linked();
  }

  /**
   * Saves as {@link #save(Model, Path)} does, but leaves external tensors in the data files that
   * hold them: each is hard-linked beside the target as {@code OUT.base.data} (see {@link
   * LinkedSave#saveWithOwnLinks}) and only the model's new tensors are written, to {@code
   * OUT.data}. For a model derived from a large one without changing its weights (a rewrite).
   * Returns the names of the links.
   */
  public static java.util.List<String> saveWithLinkedData(Model model, Path path) {
    return LinkedSave.saveWithOwnLinks(model, path, SaveOptions.keep()).linked();
  }
}
