package dev.graft.trainer.data;

import java.nio.file.Path;

/**
 * A data file whose content cannot be used: a missing column, a broken quote, a label that is
 * not there. The message names the file and line and says how to fix it, so the CLI prints it as
 * is.
 */
public final class DataFileException extends RuntimeException {
  private final Path file;
  private final int line;

  /** {@code line} is 1-based; 0 when the problem is not on one line. */
  public DataFileException(Path file, int line, String problem) {
    super(where(file, line) + problem);
    this.file = file;
    this.line = line;
  }

  public DataFileException(Path file, int line, String problem, Throwable cause) {
    super(where(file, line) + problem, cause);
    this.file = file;
    this.line = line;
  }

  public Path file() {
    return file;
  }

  /** The 1-based line of the problem, or 0 when it is not on one line. */
  public int line() {
    return line;
  }

  private static String where(Path file, int line) {
    String name = String.valueOf(file.getFileName());
    return line > 0 ? name + " line " + line + ": " : name + ": ";
  }
}
