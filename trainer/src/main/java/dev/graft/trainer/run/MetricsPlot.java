package dev.graft.trainer.run;

import static com.google.common.base.Preconditions.checkArgument;

import java.util.List;
import java.util.Locale;

/**
 * An SVG chart of a run against the optimizer step: the training loss of every step (faint) and
 * its exponential moving average (smoothed, debiased as TensorBoard does), the held-out loss at
 * each epoch's end on the left axis, and the task's headline metric (accuracy, RMSE, MRR) on the
 * right axis. Plain SVG so that any browser or image viewer shows it; a plotting library would add
 * a dependency for three polylines.
 */
public final class MetricsPlot {
  private static final int W = 640;
  private static final int H = 360;
  private static final int LEFT = 60;
  private static final int RIGHT = 60;
  private static final int TOP = 40;
  private static final int BOTTOM = 50;
  /** The weight of the past in the moving average of the step losses. */
  static final double SMOOTHING = 0.9;

  private MetricsPlot() {}

  /** The chart of {@code epochs} alone, one point per epoch (a log without step lines). */
  public static String svg(String title, List<EpochMetrics> epochs) {
    return svg(title, epochs, List.of());
  }

  public static String svg(String title, List<EpochMetrics> epochs, List<StepMetrics> steps) {
    checkArgument(!epochs.isEmpty() || !steps.isEmpty(), "nothing to plot");
    // x of each epoch: its last step, or its number when the log has no steps.
    double[] epochX = new double[epochs.size()];
    long maxStep = steps.isEmpty() ? 0 : steps.get(steps.size() - 1).step();
    for (int i = 0; i < epochs.size(); i++) {
      int e = epochs.get(i).epoch();
      epochX[i] = steps.isEmpty() ? e : steps.stream().filter(st -> st.epoch() <= e).mapToLong(StepMetrics::step).max().orElse(0);
    }
    double xMax = steps.isEmpty() ? Math.max(1, epochs.size()) : Math.max(1, maxStep);
    double xMin = steps.isEmpty() ? (epochs.size() == 1 ? 0 : 1) : 0;
    double[] smooth = smoothed(steps);
    double maxLoss = 0;
    for (EpochMetrics e : epochs) maxLoss = Math.max(maxLoss, Math.max(finite(e.trainLoss()), finite(e.testLoss())));
    for (StepMetrics st : steps) maxLoss = Math.max(maxLoss, finite(st.loss()));
    maxLoss = maxLoss <= 0 ? 1 : niceCeiling(maxLoss);
    String metric = epochs.isEmpty() ? "" : epochs.get(0).headline();
    double maxMetric = 1;
    for (EpochMetrics e : epochs) maxMetric = Math.max(maxMetric, finite(e.test(metric)));
    maxMetric = maxMetric <= 1 ? 1 : niceCeiling(maxMetric);

    StringBuilder s = new StringBuilder();
    s.append(
        String.format(
            Locale.ROOT,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\""
                + " font-family=\"sans-serif\" font-size=\"12\">%n",
            W, H, W, H));
    s.append("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    s.append(text(W / 2.0, 22, "middle", escape(title), 14));
    int x0 = LEFT;
    int x1 = W - RIGHT;
    int y0 = H - BOTTOM;
    int y1 = TOP;
    s.append(line(x0, y0, x1, y0, "#333")).append(line(x0, y0, x0, y1, "#333")).append(line(x1, y0, x1, y1, "#333"));
    for (int i = 0; i <= 4; i++) {
      double frac = i / 4.0;
      double y = y0 - frac * (y0 - y1);
      s.append(line(x0, y, x1, y, "#eee"));
      s.append(text(x0 - 6, y + 4, "end", fmt(frac * maxLoss), 11));
      if (!metric.isEmpty()) s.append(text(x1 + 6, y + 4, "start", fmt(frac * maxMetric), 11));
      double xv = xMin + frac * (xMax - xMin);
      s.append(text(x(xv, xMin, xMax, x0, x1), y0 + 18, "middle", fmt(xv), 11));
    }
    s.append(text((x0 + x1) / 2.0, H - 12, "middle", steps.isEmpty() ? "epoch" : "step", 12));
    s.append(text(18, (y0 + y1) / 2.0, "middle", "loss", 12, -90));
    if (!metric.isEmpty()) s.append(text(W - 14, (y0 + y1) / 2.0, "middle", "test " + escape(metric), 12, 90));
    int row = 0;
    if (!steps.isEmpty()) {
      double[] xs = steps.stream().mapToDouble(StepMetrics::step).toArray();
      double[] raw = steps.stream().mapToDouble(st -> finite(st.loss())).toArray();
      s.append(series(xs, raw, xMin, xMax, maxLoss, x0, x1, y0, y1, "#aec7e8", 1, false));
      s.append(series(xs, smooth, xMin, xMax, maxLoss, x0, x1, y0, y1, "#1f77b4", 2, false));
      s.append(legend(x0, y1, row++, "#1f77b4", "train loss per step (smoothed)"));
    } else if (!epochs.isEmpty()) {
      double[] train = epochs.stream().mapToDouble(e -> finite(e.trainLoss())).toArray();
      s.append(series(epochX, train, xMin, xMax, maxLoss, x0, x1, y0, y1, "#1f77b4", 2, true));
      s.append(legend(x0, y1, row++, "#1f77b4", "train loss"));
    }
    if (!epochs.isEmpty()) {
      double[] test = epochs.stream().mapToDouble(e -> finite(e.testLoss())).toArray();
      s.append(series(epochX, test, xMin, xMax, maxLoss, x0, x1, y0, y1, "#ff7f0e", 2, true));
      s.append(legend(x0, y1, row++, "#ff7f0e", "test loss"));
      double[] m = epochs.stream().mapToDouble(e -> finite(e.test(metric))).toArray();
      s.append(series(epochX, m, xMin, xMax, maxMetric, x0, x1, y0, y1, "#2ca02c", 2, true));
      s.append(legend(x0, y1, row, "#2ca02c", "test " + escape(metric)));
    }
    s.append("</svg>\n");
    return s.toString();
  }

  /** The debiased exponential moving average of the step losses. */
  static double[] smoothed(List<StepMetrics> steps) {
    double[] out = new double[steps.size()];
    double avg = 0;
    for (int i = 0; i < out.length; i++) {
      avg = SMOOTHING * avg + (1 - SMOOTHING) * finite(steps.get(i).loss());
      out[i] = avg / (1 - Math.pow(SMOOTHING, i + 1));
    }
    return out;
  }

  private static String series(
      double[] xs, double[] ys, double xMin, double xMax, double top, int x0, int x1, int y0, int y1,
      String color, int width, boolean dots) {
    StringBuilder s = new StringBuilder("<polyline fill=\"none\" stroke=\"" + color + "\" stroke-width=\"" + width + "\" points=\"");
    StringBuilder circles = new StringBuilder();
    for (int i = 0; i < xs.length; i++) {
      double x = x(xs[i], xMin, xMax, x0, x1);
      double y = y0 - Math.max(0, Math.min(1, ys[i] / top)) * (y0 - y1);
      s.append(String.format(Locale.ROOT, "%.1f,%.1f ", x, y));
      if (dots) circles.append(String.format(Locale.ROOT, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>%n", x, y, color));
    }
    return s.append("\"/>\n").append(circles).toString();
  }

  private static String legend(int x0, int y1, int row, String color, String label) {
    double ly = y1 + 14 + 16 * row;
    return line(x0 + 12, ly - 4, x0 + 32, ly - 4, color) + text(x0 + 38, ly, "start", label, 11);
  }

  private static double x(double v, double min, double max, int x0, int x1) {
    return max == min ? (x0 + x1) / 2.0 : x0 + 10 + (v - min) / (max - min) * (x1 - x0 - 20);
  }

  private static double finite(double v) {
    return Double.isFinite(v) ? v : 0;
  }

  private static double niceCeiling(double v) {
    double p = Math.pow(10, Math.floor(Math.log10(v)));
    for (double m : new double[] {1, 2, 2.5, 5, 10}) {
      if (m * p >= v) return m * p;
    }
    return 10 * p;
  }

  private static String fmt(double v) {
    return String.format(Locale.ROOT, v >= 10 ? "%.0f" : "%.2f", v);
  }

  private static String line(double xa, double ya, double xb, double yb, String color) {
    return String.format(
        Locale.ROOT, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>%n",
        xa, ya, xb, yb, color);
  }

  private static String text(double x, double y, String anchor, String t, int size) {
    return String.format(
        Locale.ROOT, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" font-size=\"%d\">%s</text>%n",
        x, y, anchor, size, t);
  }

  private static String text(double x, double y, String anchor, String t, int size, int rotate) {
    return String.format(
        Locale.ROOT,
        "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" font-size=\"%d\" transform=\"rotate(%d %.1f %.1f)\">%s</text>%n",
        x, y, anchor, size, rotate, x, y, t);
  }

  private static String escape(String s) {
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;");
  }
}
