package dev.graft.tools.maven;

import dev.graft.export.ExportVerifier.VerificationFailedException;
import dev.graft.ir.analysis.IrVerificationException;
import dev.graft.ir.io.OnnxFormatException;
import dev.graft.ir.tensor.ExternalDataException;
import java.io.UncheckedIOException;
import org.apache.maven.plugin.MojoExecutionException;

/**
 * Turns what the library throws into the one exception Maven reports well: a {@link
 * MojoExecutionException} whose message says which goal, which step and which file, followed by the
 * library's own message (which already says how to fix the problem: a recipe line, the modules a
 * target could have matched).
 */
final class GoalFailures {
  private GoalFailures() {}

  /**
   * @param goal e.g. {@code "graft:rewrite"}
   * @param step what was being done, e.g. {@code "cannot apply recipe 'lora.yaml' to 'model.onnx'"}
   */
  static MojoExecutionException wrap(String goal, String step, RuntimeException e) {
    return new MojoExecutionException(goal + ": " + step + ": " + describe(e), e);
  }

  private static String describe(RuntimeException e) {
    String m = e.getMessage();
    if (e instanceof IllegalArgumentException
        || e instanceof IllegalStateException
        || e instanceof OnnxFormatException
        || e instanceof ExternalDataException
        || e instanceof IrVerificationException
        || e instanceof VerificationFailedException) {
      return m != null ? m : e.getClass().getSimpleName();
    }
    if (e instanceof UncheckedIOException u) {
      String cause = u.getCause() == null ? null : u.getCause().toString();
      if (m == null) return cause != null ? cause : "input/output error";
      // Some messages already quote the cause's; say it once.
      return cause == null || m.contains(u.getCause().getMessage() == null ? cause : u.getCause().getMessage())
          ? m
          : m + " (" + cause + ")";
    }
    return "unexpected "
        + e.getClass().getSimpleName()
        + (m == null ? "" : ": " + m)
        + ". This is a bug in Graft; rerun Maven with -e and report the stack trace.";
  }
}
