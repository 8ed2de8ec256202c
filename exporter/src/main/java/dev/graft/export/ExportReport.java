package dev.graft.export;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMap;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeSet;

/**
 * What a merged export did: the folding, the verification, the op census before and after.
 *
 * @param fp16Initializers how many weights were stored as fp16 (0 without the option)
 * @param verifiedBy the check that ran: {@code FULL} (both models, {@code verification} holds
 *     each output's difference), {@code PROBE} (each merged weight on a random probe, one entry
 *     per weight, see {@link FoldProbe}) or {@code NONE} (no entries)
 * @param timing wall seconds of each phase
 */
public record ExportReport(
    Path written,
    FoldReport fold,
    ExportVerifier.Verification verification,
    ImmutableMap<String, Integer> censusBefore,
    ImmutableMap<String, Integer> censusAfter,
    int fp16Initializers,
    long irVersion,
    ExportOptions.Verify verifiedBy,
    Timing timing) {

  /**
   * Wall seconds of the export's phases: copy, fold and check the graph; verify on ORT (both
   * sessions, built from files, and their runs); write the files.
   */
  public record Timing(double foldSeconds, double verifySeconds, double writeSeconds) {

    /** {@code fold 3.1 s, verify 2.0 s, write 4.2 s}. */
    public String summary() {
      return String.format(
          java.util.Locale.ROOT, "fold %.1f s, verify %.1f s, write %.1f s", foldSeconds, verifySeconds, writeSeconds);
    }
  }

  /** What was checked, in one line (after "Verified: "). */
  public String verificationSummary() {
    return switch (verifiedBy) {
      case PROBE -> FoldProbe.summary(verification);
      case NONE -> "nothing (--verify none): the export was written unchecked";
      default -> verification.summary();
    };
  }

  /** The operators whose count changed: {@code "MatMul 84 -> 60 (-24)"}, in name order. */
  public ImmutableList<String> censusChange() {
    return censusChange(censusBefore, censusAfter);
  }

  static ImmutableList<String> censusChange(Map<String, Integer> before, Map<String, Integer> after) {
    TreeSet<String> ops = new TreeSet<>(before.keySet());
    ops.addAll(after.keySet());
    ImmutableList.Builder<String> out = ImmutableList.builder();
    for (String op : ops) {
      int b = before.getOrDefault(op, 0);
      int a = after.getOrDefault(op, 0);
      if (a != b) out.add(String.format("%s %d -> %d (%+d)", op, b, a, a - b));
    }
    return out.build();
  }
}
