package dev.graft.trainer.eval;

import static com.google.common.base.Preconditions.checkArgument;

import java.util.Arrays;
import java.util.Comparator;
import java.util.Locale;
import java.util.stream.IntStream;

/**
 * How close predictions are to numeric targets: mean absolute error, root mean squared error,
 * Pearson's correlation and Spearman's rank correlation (Pearson's of the ranks, ties given their
 * average rank, as {@code scipy.stats.spearmanr} does). A correlation with a constant side is NaN.
 */
public record RegressionMetrics(int n, double mae, double rmse, double pearson, double spearman) {

  public static RegressionMetrics of(double[] truth, double[] predicted) {
    checkArgument(truth.length == predicted.length, "%s targets but %s predictions", truth.length, predicted.length);
    checkArgument(truth.length > 0, "no predictions to score");
    double abs = 0;
    double sq = 0;
    for (int i = 0; i < truth.length; i++) {
      double d = predicted[i] - truth[i];
      abs += Math.abs(d);
      sq += d * d;
    }
    return new RegressionMetrics(
        truth.length, abs / truth.length, Math.sqrt(sq / truth.length), pearson(truth, predicted),
        pearson(ranks(truth), ranks(predicted)));
  }

  static double pearson(double[] x, double[] y) {
    double mx = Arrays.stream(x).average().orElse(0);
    double my = Arrays.stream(y).average().orElse(0);
    double sxy = 0;
    double sxx = 0;
    double syy = 0;
    for (int i = 0; i < x.length; i++) {
      sxy += (x[i] - mx) * (y[i] - my);
      sxx += (x[i] - mx) * (x[i] - mx);
      syy += (y[i] - my) * (y[i] - my);
    }
    return sxx == 0 || syy == 0 ? Double.NaN : sxy / Math.sqrt(sxx * syy);
  }

  /** 1-based ranks, ties sharing their average rank. */
  static double[] ranks(double[] v) {
    Integer[] order = IntStream.range(0, v.length).boxed().toArray(Integer[]::new);
    Arrays.sort(order, Comparator.comparingDouble(i -> v[i]));
    double[] r = new double[v.length];
    for (int i = 0; i < order.length; ) {
      int j = i;
      while (j + 1 < order.length && v[order[j + 1]] == v[order[i]]) j++;
      double rank = (i + j) / 2.0 + 1;
      for (int k = i; k <= j; k++) r[order[k]] = rank;
      i = j + 1;
    }
    return r;
  }

  @Override
  public String toString() {
    return String.format(Locale.ROOT, "n %d: RMSE %.4f, MAE %.4f, Pearson %.4f, Spearman %.4f", n, rmse, mae, pearson, spearman);
  }
}
