package dev.graft.tools.cli;

import java.io.PrintWriter;
import java.time.Duration;
import java.util.Locale;
import java.util.function.LongSupplier;

/**
 * A one-line progress bar for long work, redrawn in place with a carriage return:
 * {@code epoch 2/3 [#######.......]  41/75  loss 0.3121  38.2 ex/s  ETA 0:52}. On a terminal
 * that is not interactive (a CI log), it prints a line every tenth of the way instead, so logs
 * stay readable.
 *
 * <p>The time left is the pace since the first update applied to the units still to do. Callers
 * make the bar at their first update, after a unit is done (the first step of a run, or the first
 * after a resume, which starts part of the way), so the bar cannot know how long the work before
 * it took: it shows {@code --:--} until a second update has given it a pace (or the work is done).
 */
final class ProgressBar {
  private static final int WIDTH = 24;

  private final PrintWriter out;
  private final boolean interactive;
  private final String label;
  private final int total;
  private final LongSupplier nanoTime;
  private long firstNanos;
  private int firstDone = -1;
  private int lastDecile = -1;

  ProgressBar(PrintWriter out, boolean interactive, String label, int total) {
    this(out, interactive, label, total, System::nanoTime);
  }

  /** With its own clock, for tests. */
  ProgressBar(PrintWriter out, boolean interactive, String label, int total, LongSupplier nanoTime) {
    this.out = out;
    this.interactive = interactive;
    this.label = label;
    this.total = Math.max(1, total);
    this.nanoTime = nanoTime;
  }

  /** Whether stderr is a terminal that understands carriage returns. */
  static boolean consoleIsInteractive() {
    return System.console() != null && !"dumb".equals(System.getenv("TERM"));
  }

  /** Redraws with {@code done} of {@code total} units finished and a free-form status. */
  void update(int done, String status, double unitsPerSecond, String unit) {
    double frac = Math.min(1, done / (double) total);
    int filled = (int) Math.round(frac * WIDTH);
    long now = nanoTime.getAsLong();
    if (firstDone < 0) {
      firstDone = done;
      firstNanos = now;
    }
    double eta = done >= total ? 0
        : done <= firstDone ? Double.NaN
        : (now - firstNanos) / 1e9 / (done - firstDone) * (total - done);
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
