package dev.graft.ir.io;

import dev.graft.ir.Model;
import dev.graft.ir.tensor.ExternalTensor;
import dev.graft.ir.tensor.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;

/**
 * A model written as a file for one ONNX Runtime session, so that ORT opens it from a path and
 * its frozen weights never pass through the Java heap or a byte array (which also caps a model
 * at protobuf's 2 GiB). External tensors are not copied: the session file is written into the
 * folder of the data file that holds most of them and points at that file, at the tensors' own
 * offsets. Data files in other folders are hard-linked beside it; tensors made in memory (LoRA
 * factors, folded weights, a head) go to a small data file of the session's own.
 *
 * <pre>
 *   models/big.onnx      models/big.onnx.data (5 GiB)       models/.graft-session-XXXX.onnx
 *      W1 → big.onnx.data@0        ◄───────────────────────     W1 → big.onnx.data@0
 *                                                               A, B → .graft-session-XXXX.onnx.data
 * </pre>
 *
 * <p>Close it once the session is open: that deletes what it wrote (never the model's own data
 * files). ORT has read or mapped the data by then; on Linux a mapping outlives the file's name.
 * A folder that cannot be written falls back to a temporary folder with hard links, and where
 * linking fails too, to copying the data file to file (never through the heap).
 */
public final class SessionFile implements AutoCloseable {
  private static final String PREFIX = ".graft-session-";

  /**
   * Weights read from files from which a session counts as large: 1 GiB. Over large weights,
   * callers turn off what makes ORT copy frozen weights into anonymous memory (prepacking,
   * constant folding of {@code Transpose(W)} in a backward pass), which would double or triple
   * the memory a model needs.
   */
  public static final long LARGE_WEIGHTS = 1L << 30;

  private final Path path;
  private final List<Path> written;
  private final Path tempDir;
  private final long referencedBytes;

  private SessionFile(Path path, List<Path> written, Path tempDir, long referencedBytes) {
    this.path = path;
    this.written = written;
    this.tempDir = tempDir;
    this.referencedBytes = referencedBytes;
  }

  /** Bytes of tensors the session file points at in their own files (not copied). */
  public long referencedBytes() {
    return referencedBytes;
  }

  /** Whether the session reads at least {@link #LARGE_WEIGHTS} of weights from files. */
  public boolean large() {
    return referencedBytes >= LARGE_WEIGHTS;
  }

  /** The model file to hand ORT ({@code env.createSession(path().toString(), options)}). */
  public Path path() {
    return path;
  }

  /** Writes {@code model} for a session; see the class comment for where its data comes from. */
  public static SessionFile write(Model model) {
    // External tensors whose file still holds their data, grouped by that file.
    Map<Path, List<ExternalTensor>> byFile = new LinkedHashMap<>();
    Map<Path, Long> bytesByDir = new LinkedHashMap<>();
    for (Tensor t : Tensors.all(model)) {
      if (t instanceof ExternalTensor e && e.fileHoldsData()) {
        Path file = e.file().toAbsolutePath().normalize();
        byFile.computeIfAbsent(file, k -> new ArrayList<>()).add(e);
        bytesByDir.merge(file.getParent(), e.length(), Long::sum);
      }
    }
    Path home =
        bytesByDir.entrySet().stream()
            .max(Map.Entry.comparingByValue())
            .map(Map.Entry::getKey)
            .filter(Files::isWritable)
            .orElse(null);
    List<Path> written = new ArrayList<>();
    Path tempDir = null;
    try {
      if (home == null) {
        tempDir = Files.createTempDirectory("graft-session");
        home = tempDir;
      }
      String id = PREFIX + UUID.randomUUID();
      Path target = home.resolve(id + ".onnx");
      Path data = home.resolve(id + ".onnx.data");
      Map<Tensor, String> references = new IdentityHashMap<>();
      int links = 0;
      for (Map.Entry<Path, List<ExternalTensor>> e : byFile.entrySet()) {
        Path file = e.getKey();
        String location;
        if (file.startsWith(home)) {
          location = home.relativize(file).toString().replace('\\', '/');
        } else {
          Path link = home.resolve(id + "-" + (links++) + ".data");
          try {
            Files.createLink(link, file);
            written.add(link);
            location = link.getFileName().toString();
          } catch (IOException | UnsupportedOperationException notLinked) {
            continue; // another file system: the writer copies these tensors file to file
          }
        }
        for (ExternalTensor t : e.getValue()) references.put(t, location);
      }
      written.add(target);
      written.add(data);
      ModelWriter.writeForSession(model, target, data, references);
      if (FileSystems.getDefault().supportedFileAttributeViews().contains("posix")) {
        Files.setPosixFilePermissions(target, PosixFilePermissions.fromString("rw-r--r--"));
      }
      long referenced = 0;
      for (Tensor t : references.keySet()) referenced += ((ExternalTensor) t).length();
      return new SessionFile(target, written, tempDir, referenced);
    } catch (IOException e) {
      written.forEach(AtomicFiles::deleteQuietly);
      AtomicFiles.deleteQuietly(tempDir);
      throw new UncheckedIOException(
          "Cannot write the model for an ONNX Runtime session into "
              + home
              + ": "
              + e.getMessage()
              + ". Free disk space there or make the folder writable.",
          e);
    }
  }

  /** Deletes the files this wrote; the model's own data files stay. */
  @Override
  public void close() {
    written.forEach(AtomicFiles::deleteQuietly);
    AtomicFiles.deleteQuietly(tempDir);
  }
}
