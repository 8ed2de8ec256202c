package dev.graft.ir.io;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;

/**
 * Writes files so that nothing a user has is ever left half-written: the content goes to a
 * temporary file in the target's folder, which is then moved over the target in one step. On
 * failure the temporary file is deleted and the target is as it was.
 *
 * <p>Temporary files are created readable by all (rw-r--r--), as a plain new file would be, not
 * with {@link Files#createTempFile}'s owner-only default, which would otherwise stick to every
 * model and report Graft writes.
 */
public final class AtomicFiles {
  /** Writes the content of one file; it gets the temporary path to write to. */
  @FunctionalInterface
  public interface Content {
    void writeTo(Path tmp) throws IOException;
  }

  private AtomicFiles() {}

  /** Writes {@code target} through a temporary file; I/O failures are unchecked and name it. */
  public static void write(Path target, Content content) {
    Path tmp = null;
    try {
      tmp = createTemp(target);
      content.writeTo(tmp);
      replace(tmp, target);
      tmp = null;
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot write " + target + ": " + e.getMessage(), e);
    } finally {
      deleteQuietly(tmp);
    }
  }

  public static void writeString(Path target, String text) {
    write(target, tmp -> Files.writeString(tmp, text, StandardCharsets.UTF_8));
  }

  /** A new empty temporary file beside {@code target}, readable by all. */
  public static Path createTemp(Path target) throws IOException {
    Path dir = target.toAbsolutePath().getParent();
    String prefix = "." + target.getFileName() + ".";
    if (FileSystems.getDefault().supportedFileAttributeViews().contains("posix")) {
      return Files.createTempFile(
          dir, prefix, ".tmp",
          PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-r--r--")));
    }
    return Files.createTempFile(dir, prefix, ".tmp");
  }

  /** Moves {@code tmp} over {@code target} atomically where the file system can. */
  public static void replace(Path tmp, Path target) throws IOException {
    try {
      Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    } catch (AtomicMoveNotSupportedException e) {
      Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
    }
  }

  /**
   * Deletes a temporary folder and everything in it, deepest first; a failure leaves only that
   * temporary folder behind, which is harmless.
   */
  public static void deleteTreeQuietly(Path dir) {
    if (dir == null || !Files.exists(dir)) return;
    try (var files = Files.walk(dir)) {
      for (Path f : files.sorted(java.util.Comparator.reverseOrder()).toList()) Files.deleteIfExists(f);
    } catch (IOException ignored) {
      // A leftover temporary folder is harmless; nothing the user wrote is inside it.
    }
  }

  /** Deletes a leftover temporary file; a failure here leaves only a hidden .tmp file behind. */
  public static void deleteQuietly(Path p) {
    if (p == null) return;
    try {
      Files.deleteIfExists(p);
    } catch (IOException ignored) {
      // The target was not touched; a stray temporary file is harmless.
    }
  }
}
