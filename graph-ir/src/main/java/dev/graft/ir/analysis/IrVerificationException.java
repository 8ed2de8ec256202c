package dev.graft.ir.analysis;

import com.google.common.collect.ImmutableList;
import java.util.List;

/**
 * A graph or model breaks IR invariants. Unchecked: a broken graph is a programming error in the
 * pass that built it, not a condition to recover from. The message lists every problem.
 */
public final class IrVerificationException extends RuntimeException {
  private final ImmutableList<String> problems;

  public IrVerificationException(String subject, List<String> problems) {
    super(message(subject, problems));
    this.problems = ImmutableList.copyOf(problems);
  }

  /** Each problem, one sentence that says what is wrong, where, and how to fix it. */
  public ImmutableList<String> problems() {
    return problems;
  }

  private static String message(String subject, List<String> problems) {
    StringBuilder b = new StringBuilder();
    b.append(subject)
        .append(" fails verification with ")
        .append(problems.size())
        .append(problems.size() == 1 ? " problem:" : " problems:");
    for (String p : problems) b.append("\n  - ").append(p);
    return b.toString();
  }
}
