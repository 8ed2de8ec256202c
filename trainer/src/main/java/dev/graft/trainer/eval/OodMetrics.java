package dev.graft.trainer.eval;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.gson.GsonBuilder;
import com.google.gson.JsonObject;
import java.math.BigDecimal;
import java.math.RoundingMode;
import java.util.Arrays;
import java.util.Locale;

/**
 * How well a classifier's confidence separates in-distribution inputs from out-of-distribution
 * (OOD) ones, with two post-hoc scores computed from the logits:
 *
 * <ul>
 *   <li><b>MSP</b>, the maximum softmax probability {@code max_c softmax(logits)_c} (Hendrycks and
 *       Gimpel, 2017).
 *   <li><b>Energy</b> (Liu et al., 2020): the energy is {@code E(x) = -T * logsumexp(logits / T)}
 *       with {@code T = 1}; in-distribution inputs have <em>low</em> energy. The score used here is
 *       the negated energy, {@code -E(x) = logsumexp(logits)}, so that for both scores
 *       <b>higher means more in-distribution</b>.
 * </ul>
 *
 * Both detectors are judged with in-distribution as the positive class:
 *
 * <ul>
 *   <li><b>AUROC</b>, the probability that a random in-distribution score exceeds a random OOD
 *       score, a tie counting one half: the Mann-Whitney U statistic over {@code nIn * nOut},
 *       computed exactly from mid-ranks (see {@link #auroc}).
 *   <li><b>FPR at 95% TPR</b>: put the threshold at the highest value that still keeps 95% of
 *       the in-distribution scores ({@code score >= threshold}); report the fraction of OOD scores
 *       that also pass (see {@link #fprAtTpr}).
 * </ul>
 */
public final class OodMetrics {
  /** The true positive rate at which {@link Detection#fprAt95Tpr()} is read. */
  public static final double TPR = 0.95;

  /** One score's quality as a detector. */
  public record Detection(String score, double auroc, double fprAt95Tpr) {
    JsonObject toJsonObject() {
      JsonObject o = new JsonObject();
      o.addProperty("auroc", auroc);
      o.addProperty("fpr95", fprAt95Tpr);
      return o;
    }
  }

  private final int inCount;
  private final int outCount;
  private final Detection msp;
  private final Detection energy;

  private OodMetrics(int inCount, int outCount, Detection msp, Detection energy) {
    this.inCount = inCount;
    this.outCount = outCount;
    this.msp = msp;
    this.energy = energy;
  }

  /** MSP and energy detection of {@code outLogits} among {@code inLogits} (one row per input). */
  public static OodMetrics of(float[][] inLogits, float[][] outLogits) {
    checkArgument(inLogits.length > 0, "no in-distribution examples");
    checkArgument(outLogits.length > 0, "no out-of-distribution examples");
    int k = inLogits[0].length;
    for (float[][] set : new float[][][] {inLogits, outLogits}) {
      for (float[] row : set) {
        checkArgument(
            row.length == k,
            "the two datasets' logits have %s and %s columns; both must come from the same model",
            k,
            row.length);
      }
    }
    return new OodMetrics(
        inLogits.length,
        outLogits.length,
        detection("msp", maxSoftmaxProbability(inLogits), maxSoftmaxProbability(outLogits)),
        detection("energy", negativeEnergy(inLogits), negativeEnergy(outLogits)));
  }

  private static Detection detection(String name, double[] in, double[] out) {
    return new Detection(name, auroc(in, out), fprAtTpr(in, out, TPR));
  }

  public int inCount() {
    return inCount;
  }

  public int outCount() {
    return outCount;
  }

  /** The maximum-softmax-probability detector. */
  public Detection msp() {
    return msp;
  }

  /** The (negated) energy detector. */
  public Detection energy() {
    return energy;
  }

  // ---- scores --------------------------------------------------------------------------------

  /**
   * {@code log(sum_j exp(row[j]))}, shifted by the row's maximum so that no exponential
   * overflows: {@code m + log(sum_j exp(row[j] - m))}, each term in (0, 1] and the sum in [1, n].
   */
  public static double logSumExp(float[] row) {
    checkArgument(row.length > 0, "logsumexp of an empty row");
    double m = Double.NEGATIVE_INFINITY;
    for (float v : row) {
      checkArgument(!Float.isNaN(v), "the logits hold NaN; the model's output is not a number");
      m = Math.max(m, v);
    }
    if (m == Double.NEGATIVE_INFINITY || m == Double.POSITIVE_INFINITY) return m;
    double sum = 0;
    for (float v : row) sum += Math.exp(v - m);
    return m + Math.log(sum);
  }

  /**
   * The softmax of {@code row}: {@code exp(row[j] - max) / sum}, shifted by the maximum like
   * {@link #logSumExp}. Dividing (rather than subtracting the logsumexp) keeps the relative error
   * near one rounding even when the logits are large, where {@code row[j] - logsumexp} would lose
   * digits to cancellation.
   */
  public static double[] softmax(float[] row) {
    checkArgument(row.length > 0, "softmax of an empty row");
    double m = Double.NEGATIVE_INFINITY;
    for (float v : row) {
      checkArgument(!Float.isNaN(v), "the logits hold NaN; the model's output is not a number");
      m = Math.max(m, v);
    }
    double[] p = new double[row.length];
    double sum = 0;
    for (int j = 0; j < row.length; j++) {
      p[j] = row[j] == m ? 1.0 : Math.exp(row[j] - m);
      sum += p[j];
    }
    for (int j = 0; j < row.length; j++) p[j] /= sum;
    return p;
  }

  /**
   * Per row, {@code max_c softmax(row)_c}. Computed as {@code 1 / sum_j exp(row[j] - max)}, which
   * is exact in the limit where one logit dominates (the result is 1, not 1 - rounding).
   */
  public static double[] maxSoftmaxProbability(float[][] logits) {
    double[] out = new double[logits.length];
    for (int i = 0; i < logits.length; i++) {
      float[] row = logits[i];
      checkArgument(row.length > 0, "row %s of the logits is empty", i);
      double m = Double.NEGATIVE_INFINITY;
      for (float v : row) {
        checkArgument(!Float.isNaN(v), "row %s of the logits holds NaN", i);
        m = Math.max(m, v);
      }
      double sum = 0;
      for (float v : row) sum += v == m ? 1.0 : Math.exp(v - m);
      out[i] = 1.0 / sum;
    }
    return out;
  }

  /** Per row, {@code -E(x) = logsumexp(row)} (temperature 1): higher is more in-distribution. */
  public static double[] negativeEnergy(float[][] logits) {
    double[] out = new double[logits.length];
    for (int i = 0; i < logits.length; i++) out[i] = logSumExp(logits[i]);
    return out;
  }

  // ---- detection statistics -----------------------------------------------------------------

  /**
   * The area under the ROC curve with {@code in} as positives: {@code P(in > out) + P(in = out) /
   * 2} over all pairs. Computed as the Mann-Whitney U from the rank sum of {@code in} in the
   * pooled sample, tied values sharing their mean rank. Twice a mean rank is an integer, so the
   * rank sum is accumulated exactly in a {@code long} and the only rounding is the final division.
   * O((m + n) log(m + n)).
   */
  public static double auroc(double[] in, double[] out) {
    checkArgument(in.length > 0 && out.length > 0, "AUROC needs scores of both kinds");
    int n = in.length + out.length;
    double[] values = new double[n];
    boolean[] positive = new boolean[n];
    Integer[] order = new Integer[n];
    for (int i = 0; i < in.length; i++) {
      checkArgument(!Double.isNaN(in[i]), "in-distribution score %s is NaN", i);
      values[i] = in[i];
      positive[i] = true;
    }
    for (int i = 0; i < out.length; i++) {
      checkArgument(!Double.isNaN(out[i]), "out-of-distribution score %s is NaN", i);
      values[in.length + i] = out[i];
    }
    for (int i = 0; i < n; i++) order[i] = i;
    Arrays.sort(order, (a, b) -> Double.compare(values[a], values[b]));
    long twiceRankSum = 0; // sum over positives of 2 * (1-based mid-rank)
    for (int start = 0; start < n; ) {
      int end = start;
      // == rather than Double.compare so that -0.0 and 0.0 tie, as they do as scores.
      while (end + 1 < n && values[order[end + 1]] == values[order[start]]) end++;
      long twiceMidRank = (start + 1) + (end + 1);
      for (int r = start; r <= end; r++) if (positive[order[r]]) twiceRankSum += twiceMidRank;
      start = end + 1;
    }
    long m = in.length;
    long twiceU = twiceRankSum - m * (m + 1);
    return twiceU / (2.0 * m * out.length);
  }

  /**
   * The false positive rate at true positive rate {@code tpr}, in-distribution scores positive
   * and a sample accepted as in-distribution when {@code score >= threshold}.
   *
   * <p>The threshold is not interpolated: it is the {@code k}-th largest in-distribution score,
   * {@code k = ceil(tpr * nIn)} (computed in decimal, so that 0.95 * 20 is 19, not 19.000000001).
   * That is the highest threshold whose TPR is at least {@code tpr}: it keeps at least {@code k}
   * in-distribution scores, and any higher threshold keeps at most {@code k - 1 < tpr * nIn}.
   * Ties at the threshold are all kept. The result is {@code #{out >= threshold} / nOut}.
   */
  public static double fprAtTpr(double[] in, double[] out, double tpr) {
    checkArgument(in.length > 0 && out.length > 0, "FPR at TPR needs scores of both kinds");
    checkArgument(tpr > 0 && tpr <= 1, "TPR %s is not in (0, 1]", tpr);
    double threshold = thresholdAtTpr(in, tpr);
    long accepted = 0;
    for (double v : out) {
      checkArgument(!Double.isNaN(v), "an out-of-distribution score is NaN");
      if (v >= threshold) accepted++;
    }
    return (double) accepted / out.length;
  }

  /** The threshold of {@link #fprAtTpr}: the {@code ceil(tpr * n)}-th largest of {@code in}. */
  public static double thresholdAtTpr(double[] in, double tpr) {
    checkArgument(in.length > 0, "no in-distribution scores");
    checkArgument(tpr > 0 && tpr <= 1, "TPR %s is not in (0, 1]", tpr);
    for (double v : in) checkArgument(!Double.isNaN(v), "an in-distribution score is NaN");
    int k =
        BigDecimal.valueOf(tpr)
            .multiply(BigDecimal.valueOf(in.length))
            .setScale(0, RoundingMode.CEILING)
            .intValueExact();
    double[] sorted = in.clone();
    Arrays.sort(sorted);
    return sorted[in.length - k]; // k-th largest
  }

  // ---- reporting ----------------------------------------------------------------------------

  /** {@code {nIn, nOut, msp: {auroc, fpr95}, energy: {auroc, fpr95}}}. */
  public JsonObject toJsonObject() {
    JsonObject o = new JsonObject();
    o.addProperty("nIn", inCount);
    o.addProperty("nOut", outCount);
    o.add("msp", msp.toJsonObject());
    o.add("energy", energy.toJsonObject());
    return o;
  }

  public String toJson() {
    return new GsonBuilder().disableHtmlEscaping().create().toJson(toJsonObject());
  }

  @Override
  public String toString() {
    return String.format(
        Locale.ROOT,
        "out-of-distribution detection (%d in, %d out; in-distribution positive)%n"
            + "score    AUROC   FPR@95%%TPR%n"
            + "msp     %.4f      %.4f%n"
            + "energy  %.4f      %.4f%n",
        inCount,
        outCount,
        msp.auroc(),
        msp.fprAt95Tpr(),
        energy.auroc(),
        energy.fprAt95Tpr());
  }
}
