package dev.graft.ir.io;

import dev.graft.ir.Model;
import dev.graft.ir.tensor.ExternalTensor;
import dev.graft.ir.tensor.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A save that shares the data files its external tensors already live in instead of copying
 * them: a model derived from a large one (the base with adapter inputs, say) costs its new
 * tensors, not another copy of the frozen weights.
 *
 * <pre>
 *   models/big.onnx.data (5 GiB)                 out/derived.onnx
 *        ▲  hard link (same bytes, no copy)           W1 → big.onnx.data@0 (its own offsets)
 *   out/big.onnx.data ◄───────────────────────────    A, B → derived.onnx.data
 * </pre>
 *
 * A data file inside the target's folder is pointed at by its relative path; one elsewhere is
 * hard-linked into the target's folder under its own name (or that name with a number, when
 * the name is taken by another file) and pointed at there, since external data must stay inside
 * the model's folder. Where a link cannot be made (another file system), its tensors are copied
 * file to file into {@code target.data}, as a plain save does. Tensors made in memory are laid
 * out as the save options say. Links are made under their final names before the model is
 * written; the model and its own data file are written atomically.
 */
final class LinkedSave {
  private LinkedSave() {}

  /** What {@link #save} did: the data files linked (their names in the target's folder). */
  record Result(List<String> linked, List<String> copied) {}

  static Result save(Model model, Path path, SaveOptions options) {
    Path target = path.toAbsolutePath().normalize();
    Path dir = target.getParent();
    Map<Path, List<ExternalTensor>> byFile = dataFiles(model);
    Map<Tensor, String> references = new IdentityHashMap<>();
    List<String> linked = new ArrayList<>();
    List<String> copied = new ArrayList<>();
    String ownData = ModelWriter.dataLocation(target, options);
    for (Map.Entry<Path, List<ExternalTensor>> e : byFile.entrySet()) {
      Path file = e.getKey();
      String location;
      if (file.startsWith(dir) && !dir.resolve(ownData).normalize().equals(file)) {
        location = dir.relativize(file).toString().replace('\\', '/');
      } else {
        location = link(dir, file, ownData);
        if (location == null) {
          copied.add(file.toString());
          continue;
        }
        linked.add(location);
      }
      for (ExternalTensor t : e.getValue()) references.put(t, location);
    }
    ModelWriter.write(model, target, options, null, references);
    return new Result(List.copyOf(linked), List.copyOf(copied));
  }

  /**
   * A save whose external tensors stay in the data files that hold them, each file hard-linked
   * beside the target under the target's own name, {@code OUT.base.data} (then {@code
   * OUT.base-2.data}, ... for a model that reads several): the saved model keeps working when the
   * model it came from is deleted or replaced, and costs its new tensors alone, which go to
   * {@code OUT.data} as a plain save lays them out. A rewrite changes no frozen weight, so its
   * output is written this way ({@code graft rewrite}):
   *
   * <pre>
   *   big.onnx.data (5 GiB) ◄── hard link ── lora.onnx.base.data   W1, W2 … at their own offsets
   *                                          lora.onnx.data        A, B (new tensors only)
   * </pre>
   *
   * The links are made under temporary names and moved into place with the model, after its own
   * data file, so a failed save leaves the links of an earlier save of the target as they were.
   * A file the target's name already links to is pointed at as it is. Where a link cannot be
   * made (another file system), that file's tensors are copied file to file into {@code
   * OUT.data}. No writer of Graft writes into an existing data file: every save writes a new
   * file and moves it over the old name ({@link AtomicFiles}), which leaves the other names of
   * a linked file, and their bytes, untouched.
   */
  static Result saveWithOwnLinks(Model model, Path path, SaveOptions options) {
    Path target = path.toAbsolutePath().normalize();
    Path dir = target.getParent();
    Map<Path, List<ExternalTensor>> byFile = dataFiles(model);
    Map<Tensor, String> references = new IdentityHashMap<>();
    Map<Path, Path> links = new LinkedHashMap<>();
    List<String> linked = new ArrayList<>();
    List<String> copied = new ArrayList<>();
    int k = 0;
    try {
      for (Map.Entry<Path, List<ExternalTensor>> e : byFile.entrySet()) {
        Path file = e.getKey();
        String name = target.getFileName() + (k == 0 ? ".base.data" : ".base-" + (k + 1) + ".data");
        Path at = dir.resolve(name);
        if (!(Files.exists(at) && Files.isSameFile(at, file))) {
          Path tmp = AtomicFiles.createTemp(at);
          Files.delete(tmp);
          try {
            Files.createLink(tmp, file);
          } catch (IOException | UnsupportedOperationException notLinked) {
            copied.add(file.toString()); // another file system, or no links there: copy instead
            continue;
          }
          links.put(tmp, at);
        }
        k++;
        linked.add(name);
        for (ExternalTensor t : e.getValue()) references.put(t, name);
      }
      ModelWriter.write(model, target, options, null, references, links);
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot link the data files of " + path + ": " + e.getMessage()
          + ". Make the folder writable.", e);
    } finally {
      links.keySet().forEach(AtomicFiles::deleteQuietly); // moved into place on success
    }
    return new Result(List.copyOf(linked), List.copyOf(copied));
  }

  /** The data files the model's external tensors read, each with its tensors, in model order. */
  private static Map<Path, List<ExternalTensor>> dataFiles(Model model) {
    Map<Path, List<ExternalTensor>> byFile = new LinkedHashMap<>();
    for (Tensor t : Tensors.all(model)) {
      if (t instanceof ExternalTensor e && e.fileHoldsData()) {
        byFile.computeIfAbsent(e.file().toAbsolutePath().normalize(), k -> new ArrayList<>()).add(e);
      }
    }
    return byFile;
  }

  /** A hard link to {@code file} in {@code dir}; its name there, or null where linking fails. */
  private static String link(Path dir, Path file, String reserved) {
    String name = file.getFileName().toString();
    for (int k = 0; k < 100; k++) {
      String candidate = k == 0 ? name : name + "." + k;
      if (candidate.equals(reserved)) continue;
      Path link = dir.resolve(candidate);
      try {
        if (Files.exists(link)) {
          if (Files.isSameFile(link, file)) return candidate;
          continue;
        }
        Files.createLink(link, file);
        return candidate;
      } catch (IOException | UnsupportedOperationException e) {
        return null; // another file system, or no links there: copy instead
      }
    }
    throw new UncheckedIOException(
        new IOException("Cannot find a free name for a link to " + file + " in " + dir + "; empty the folder."));
  }
}
