package dev.graft.tools.cli;

import dev.graft.ir.io.OnnxFormatException;
import dev.graft.ir.tensor.ExternalDataException;
import dev.graft.trainer.data.DataFileException;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import picocli.CommandLine;
import picocli.CommandLine.IExecutionExceptionHandler;
import picocli.CommandLine.IParameterExceptionHandler;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.ParseResult;

/**
 * Turns every failure into one line on stderr and an exit status: 1 for bad input or a failed
 * run, 2 for a command line picocli cannot parse. A user sees what went wrong and how to fix it,
 * never a stack trace; {@code --stacktrace} prints one for bug reports.
 */
final class Failures implements IExecutionExceptionHandler, IParameterExceptionHandler {
  static final int FAILED = 1;
  static final int USAGE = 2;

  @Override
  public int handleExecutionException(Exception e, CommandLine cmd, ParseResult parsed) {
    PrintWriter err = cmd.getErr();
    err.println(cmd.getCommandSpec().qualifiedName() + ": " + oneLine(describe(e)));
    if (wantsStackTrace(parsed)) {
      e.printStackTrace(err);
    }
    err.flush();
    return FAILED;
  }

  @Override
  public int handleParseException(ParameterException e, String[] args) {
    CommandLine cmd = e.getCommandLine();
    PrintWriter err = cmd.getErr();
    String name = cmd.getCommandSpec().qualifiedName();
    err.println(name + ": " + oneLine(e.getMessage()) + " (see '" + name + " --help')");
    err.flush();
    return USAGE;
  }

  /** What went wrong, for a user: the library's message where it wrote one for people. */
  static String describe(Throwable t) {
    if (t instanceof UserError
        || t instanceof OnnxFormatException
        || t instanceof ExternalDataException
        || t instanceof DataFileException
        || t instanceof IllegalArgumentException
        || t instanceof IllegalStateException
        || t instanceof dev.graft.export.ExportVerifier.VerificationFailedException) {
      return t.getMessage() != null ? t.getMessage() : t.getClass().getSimpleName();
    }
    if (t instanceof UncheckedIOException u) {
      String io = describeIo(u.getCause());
      String m = u.getMessage();
      // Some messages already quote the cause's; say it once.
      if (m == null || m.equals(String.valueOf(u.getCause()))) return io;
      String causeMessage = u.getCause() == null ? null : u.getCause().getMessage();
      return causeMessage != null && m.contains(causeMessage) ? m : m + ": " + io;
    }
    if (t instanceof IOException io) {
      return describeIo(io);
    }
    if (t instanceof OutOfMemoryError) {
      return "out of memory. Give Java more heap, e.g. JAVA_TOOL_OPTIONS=-Xmx8g.";
    }
    return "unexpected "
        + t.getClass().getSimpleName()
        + (t.getMessage() == null ? "" : ": " + t.getMessage())
        + ". This is a bug in Graft; rerun with --stacktrace and report the output.";
  }

  private static String describeIo(IOException e) {
    if (e == null) return "input/output error";
    String file = e instanceof FileSystemException fs ? fs.getFile() : null;
    if (e instanceof NoSuchFileException) return "no such file: " + file;
    if (e instanceof AccessDeniedException) return "permission denied: " + file;
    if (e instanceof NotDirectoryException) return "not a folder: " + file;
    if (e instanceof FileSystemException fs) {
      return file + (fs.getReason() == null ? "" : ": " + fs.getReason());
    }
    return e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
  }

  /** Messages may span lines; the CLI's contract is one line per failure. */
  static String oneLine(String s) {
    return s.strip().replaceAll("\\s*\\R\\s*", " ");
  }

  private static boolean wantsStackTrace(ParseResult parsed) {
    for (ParseResult p = parsed; p != null; p = p.subcommand()) {
      if (p.hasMatchedOption("--stacktrace")) return true;
    }
    return false;
  }
}
