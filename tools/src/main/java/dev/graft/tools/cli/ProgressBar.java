package dev.graft.tools.cli;

import java.io.PrintWriter;
import java.time.Duration;
import java.util.Locale;

/**
 * A one-line progress bar for long work, redrawn in place with a carriage return:
 * {@code epoch 2/3 [#######.......]  41/75  loss 0.3121  38.2 ex/s  ETA 0:52}. On a terminal
 * that is not interactive (a CI log), it prints a line every tenth of the way instead, so logs
 * stay readable.
 */
final class ProgressBar {
  private static final int WIDTH = 24;

  private final PrintWriter out;
  private final boolean interactive;
  private final String label;
  private final int total;
  private final long startNanos = System.nanoTime();
  private int lastDecile = -1;

  ProgressBar(PrintWriter out, boolean interactive, String label, int total) {
    this.out = out;
    this.interactive = interactive;
    this.label = label;
    this.total = Math.max(1, total);
  }

  /** Whether stderr is a terminal that understands carriage returns. */
  static boolean consoleIsInteractive() {
    return System.console() != null && !"dumb".equals(System.getenv("TERM"));
  }

  /** Redraws with {@code done} of {@code total} units finished and a free-form status. */
  void update(int done, String status, double unitsPerSecond, String unit) {
    double frac = Math.min(1, done / (double) total);
    int filled = (int) Math.round(frac * WIDTH);
    double elapsed = (System.nanoTime() - startNanos) / 1e9;
    double eta = done == 0 ? Double.NaN : elapsed / done * (total - done);
    String line =
        String.format(
            Locale.ROOT,
            "%s [%s%s] %d/%d  %s  %.1f %s/s  ETA %s",
            label,
            "#".repeat(filled),
            ".".repeat(WIDTH - filled),
            done,
            total,
            status,
            unitsPerSecond,
            unit,
            clock(eta));
    if (interactive) {
      out.print("\r" + line);
      if (done >= total) out.println();
      out.flush();
    } else {
      int decile = (int) (frac * 10);
      if (decile != lastDecile || done >= total) {
        lastDecile = decile;
        out.println(line);
        out.flush();
      }
    }
  }

  static String clock(double seconds) {
    if (!Double.isFinite(seconds)) return "--:--";
    Duration d = Duration.ofSeconds(Math.round(seconds));
    return d.toHours() > 0
        ? String.format(Locale.ROOT, "%d:%02d:%02d", d.toHours(), d.toMinutesPart(), d.toSecondsPart())
        : String.format(Locale.ROOT, "%d:%02d", d.toMinutes(), d.toSecondsPart());
  }
}
