package dev.graft.trainer.run;

import static com.google.common.base.Preconditions.checkArgument;

import java.util.List;
import java.util.Locale;
import java.util.function.ToDoubleFunction;

/**
 * An SVG chart of a run: training and test loss on the left axis, test accuracy on the right,
 * one point per epoch. Plain SVG so that any browser or image viewer shows it, with no plotting
 * dependency.
 */
public final class MetricsPlot {
  private static final int W = 640;
  private static final int H = 360;
  private static final int LEFT = 60;
  private static final int RIGHT = 60;
  private static final int TOP = 40;
  private static final int BOTTOM = 50;

  private MetricsPlot() {}

  public static String svg(String title, List<EpochMetrics> epochs) {
    checkArgument(!epochs.isEmpty(), "no epochs to plot");
    double maxLoss = 0;
    for (EpochMetrics e : epochs) {
      maxLoss = Math.max(maxLoss, Math.max(e.trainLoss(), finite(e.testLoss())));
    }
    maxLoss = maxLoss <= 0 ? 1 : niceCeiling(maxLoss);
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
      s.append(text(x1 + 6, y + 4, "start", fmt(frac), 11));
    }
    int n = epochs.size();
    for (int i = 0; i < n; i++) {
      double x = xAt(i, n, x0, x1);
      s.append(text(x, y0 + 18, "middle", Integer.toString(epochs.get(i).epoch()), 11));
    }
    s.append(text((x0 + x1) / 2.0, H - 12, "middle", "epoch", 12));
    s.append(text(18, (y0 + y1) / 2.0, "middle", "loss", 12, -90));
    s.append(text(W - 14, (y0 + y1) / 2.0, "middle", "test accuracy", 12, 90));
    final double top = maxLoss;
    s.append(series(epochs, EpochMetrics::trainLoss, top, x0, x1, y0, y1, "#1f77b4", "train loss", 0));
    s.append(series(epochs, e -> finite(e.testLoss()), top, x0, x1, y0, y1, "#ff7f0e", "test loss", 1));
    s.append(series(epochs, EpochMetrics::testAccuracy, 1.0, x0, x1, y0, y1, "#2ca02c", "test accuracy", 2));
    s.append("</svg>\n");
    return s.toString();
  }

  private static String series(
      List<EpochMetrics> epochs, ToDoubleFunction<EpochMetrics> f, double top,
      int x0, int x1, int y0, int y1, String color, String label, int legendRow) {
    StringBuilder s = new StringBuilder("<polyline fill=\"none\" stroke=\"" + color + "\" stroke-width=\"2\" points=\"");
    StringBuilder dots = new StringBuilder();
    int n = epochs.size();
    for (int i = 0; i < n; i++) {
      double x = xAt(i, n, x0, x1);
      double y = y0 - Math.max(0, Math.min(1, f.applyAsDouble(epochs.get(i)) / top)) * (y0 - y1);
      s.append(String.format(Locale.ROOT, "%.1f,%.1f ", x, y));
      dots.append(String.format(Locale.ROOT, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>%n", x, y, color));
    }
    s.append("\"/>\n").append(dots);
    double ly = y1 + 14 + 16 * legendRow;
    s.append(line(x0 + 12, ly - 4, x0 + 32, ly - 4, color));
    s.append(text(x0 + 38, ly, "start", label, 11));
    return s.toString();
  }

  private static double xAt(int i, int n, int x0, int x1) {
    return n == 1 ? (x0 + x1) / 2.0 : x0 + 20 + i * (x1 - x0 - 40) / (double) (n - 1);
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
