package dev.graft.trainer.eval;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.math.BigDecimal;
import java.math.MathContext;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class OodMetricsTest {

  @Test
  void perfectlySeparatedScoresGiveAurocOneAndFpr95Zero() {
    double[] in = {5, 6, 7, 8};
    double[] out = {1, 2, 4.999};
    assertThat(OodMetrics.auroc(in, out)).isEqualTo(1.0);
    assertThat(OodMetrics.fprAtTpr(in, out, 0.95)).isEqualTo(0.0);
    // Swapped roles: every OOD score is above every in-distribution one.
    assertThat(OodMetrics.auroc(out, in)).isEqualTo(0.0);
    assertThat(OodMetrics.fprAtTpr(out, in, 0.95)).isEqualTo(1.0);
  }

  @Test
  void identicalDistributionsGiveAurocOneHalf() {
    SplittableRandom random = new SplittableRandom(3);
    double[] scores = new double[101];
    for (int i = 0; i < scores.length; i++) scores[i] = random.nextInt(10); // many ties
    assertThat(OodMetrics.auroc(scores, scores.clone())).isEqualTo(0.5);
    double[] constant = new double[7];
    assertThat(OodMetrics.auroc(constant, new double[3])).isEqualTo(0.5);
  }

  @Test
  void handWorkedExampleWithTies() {
    double[] in = {0.9, 0.8, 0.8, 0.3};
    double[] out = {0.8, 0.5, 0.3};
    // Pairs won by in (ties 1/2): 0.9 -> 3; each 0.8 -> 0.5 + 1 + 1; 0.3 -> 0.5. 8.5 of 12.
    assertThat(OodMetrics.auroc(in, out)).isEqualTo(8.5 / 12);
    // ceil(0.95 * 4) = 4: threshold 0.3, the lowest in score; every OOD score passes.
    assertThat(OodMetrics.thresholdAtTpr(in, 0.95)).isEqualTo(0.3);
    assertThat(OodMetrics.fprAtTpr(in, out, 0.95)).isEqualTo(1.0);
    // ceil(0.75 * 4) = 3: threshold 0.8 keeps 0.9, 0.8, 0.8; of OOD only 0.8 passes.
    assertThat(OodMetrics.fprAtTpr(in, out, 0.75)).isEqualTo(1.0 / 3);
    // ceil(0.5 * 4) = 2: threshold is still 0.8 (ties are kept together).
    assertThat(OodMetrics.thresholdAtTpr(in, 0.5)).isEqualTo(0.8);
    // ceil(0.25 * 4) = 1: threshold 0.9; no OOD score reaches it.
    assertThat(OodMetrics.fprAtTpr(in, out, 0.25)).isEqualTo(0.0);
  }

  @Test
  void thresholdIndexIsComputedInDecimal() {
    // 0.95 * 20 = 19 exactly: the threshold is the 19th largest of 1..20, which is 2. A
    // floating-point product that rounded up to 19.000000001 would give ceil 20 and threshold 1.
    double[] in = new double[20];
    for (int i = 0; i < 20; i++) in[i] = i + 1;
    assertThat(OodMetrics.thresholdAtTpr(in, 0.95)).isEqualTo(2.0);
    assertThat(OodMetrics.fprAtTpr(in, new double[] {0, 1.5, 2}, 0.95)).isEqualTo(1.0 / 3);
    double[] in100 = new double[100];
    for (int i = 0; i < 100; i++) in100[i] = i + 1;
    assertThat(OodMetrics.thresholdAtTpr(in100, 0.95)).isEqualTo(6.0); // 95th largest
  }

  @Test
  void aurocAgreesWithPairwiseCountOnRandomData() {
    SplittableRandom random = new SplittableRandom(11);
    for (int trial = 0; trial < 50; trial++) {
      int m = 1 + random.nextInt(80);
      int n = 1 + random.nextInt(80);
      boolean coarse = trial % 2 == 0; // coarse grids make many ties
      double[] in = new double[m];
      double[] out = new double[n];
      for (int i = 0; i < m; i++) in[i] = draw(random, 0.7, coarse);
      for (int i = 0; i < n; i++) out[i] = draw(random, 0.0, coarse);
      double wins = 0;
      for (double a : in) {
        for (double b : out) {
          if (a > b) wins += 1;
          else if (a == b) wins += 0.5;
        }
      }
      assertThat(OodMetrics.auroc(in, out)).isCloseTo(wins / ((double) m * n), within(1e-12));
    }
  }

  @Test
  void fprAgreesWithThresholdScanOnRandomData() {
    SplittableRandom random = new SplittableRandom(12);
    for (int trial = 0; trial < 50; trial++) {
      int m = 1 + random.nextInt(80);
      int n = 1 + random.nextInt(80);
      double[] in = new double[m];
      double[] out = new double[n];
      for (int i = 0; i < m; i++) in[i] = draw(random, 0.7, trial % 2 == 0);
      for (int i = 0; i < n; i++) out[i] = draw(random, 0.0, trial % 2 == 0);
      // Oracle: try every in-distribution score as threshold; keep the highest whose TPR >= 0.95
      // (TPR compared as counts: 100 * kept >= 95 * m, exact).
      double best = Double.NEGATIVE_INFINITY;
      for (double t : in) {
        long kept = Arrays.stream(in).filter(v -> v >= t).count();
        if (100 * kept >= 95L * m) best = Math.max(best, t);
      }
      double threshold = best;
      double fpr = (double) Arrays.stream(out).filter(v -> v >= threshold).count() / n;
      assertThat(OodMetrics.thresholdAtTpr(in, 0.95)).isEqualTo(threshold);
      assertThat(OodMetrics.fprAtTpr(in, out, 0.95)).isEqualTo(fpr);
    }
  }

  private static double draw(SplittableRandom random, double mean, boolean coarse) {
    double v = mean + random.nextGaussian();
    return coarse ? Math.round(v * 4) / 4.0 : v;
  }

  // ---- scores -----------------------------------------------------------------------------

  /**
   * log(sum exp(x)) with the exponentials in 60-digit decimal arithmetic: the independent
   * reference. {@code log(sum exp(x_j)) = max + log(sum exp(x_j - max))} holds exactly; the
   * differences {@code x_j - max} are exact in BigDecimal, their exponentials are summed to 60
   * digits, and the sum (in [1, n]) is small enough for double's log.
   */
  private static double referenceLogSumExp(float[] row) {
    MathContext mc = new MathContext(60);
    float xMax = Float.NEGATIVE_INFINITY;
    for (float v : row) xMax = Math.max(xMax, v);
    BigDecimal max = new BigDecimal(xMax);
    BigDecimal sum = BigDecimal.ZERO;
    for (float v : row) {
      BigDecimal d = new BigDecimal(v).subtract(max); // exact, <= 0
      if (d.compareTo(BigDecimal.valueOf(-1000)) < 0) continue; // < e^-1000: invisible
      sum = sum.add(exp(d, mc), mc);
    }
    return max.add(new BigDecimal(Math.log(sum.doubleValue())), mc).doubleValue();
  }

  /** e^y for y in [-1000, 0]: halve y until |y| < 1/2, sum the series, square back. */
  private static BigDecimal exp(BigDecimal y, MathContext mc) {
    int halvings = 0;
    BigDecimal r = y;
    while (r.abs().compareTo(new BigDecimal("0.5")) > 0) {
      r = r.divide(BigDecimal.valueOf(2), mc);
      halvings++;
    }
    BigDecimal term = BigDecimal.ONE;
    BigDecimal sum = BigDecimal.ONE;
    for (int k = 1; k < 60; k++) {
      term = term.multiply(r, mc).divide(BigDecimal.valueOf(k), mc);
      sum = sum.add(term, mc);
    }
    for (int i = 0; i < halvings; i++) sum = sum.multiply(sum, mc);
    return sum;
  }

  @Test
  void logSumExpIsStableForLargeAndSmallLogits() {
    float[][] rows = {
      {1000f, 999f, -1000f},
      {3e38f, 3e38f},
      {-1e4f, -1e4f - 1f},
      {88.7f, 89f, 0f, -5f},
      {0.25f, -0.5f, 1.5f},
      {-3e38f, 7f}
    };
    for (float[] row : rows) {
      double expected = referenceLogSumExp(row);
      assertThat(OodMetrics.logSumExp(row))
          .as(Arrays.toString(row))
          .isCloseTo(expected, within(1e-12 * Math.max(1, Math.abs(expected))));
    }
    // Closed forms.
    assertThat(OodMetrics.logSumExp(new float[] {3e38f, 3e38f})).isEqualTo(3e38f + Math.log(2));
    assertThat(OodMetrics.logSumExp(new float[] {-7.5f})).isEqualTo(-7.5);
  }

  @Test
  void softmaxAndMspAreStableAndConsistent() {
    float[][] logits = {{1000f, 999f, -1000f}, {0f, 0f}, {-1e4f, -1e4f - 1f}, {500f, -500f}};
    double[] msp = OodMetrics.maxSoftmaxProbability(logits);
    for (int i = 0; i < logits.length; i++) {
      double[] p = OodMetrics.softmax(logits[i]);
      assertThat(Arrays.stream(p).sum()).isCloseTo(1.0, within(1e-15));
      assertThat(msp[i]).isCloseTo(Arrays.stream(p).max().orElseThrow(), within(1e-15));
    }
    double sigmoid1 = 1 / (1 + Math.exp(-1)); // softmax of two logits 1 apart
    assertThat(msp[0]).isCloseTo(sigmoid1, within(1e-15));
    assertThat(msp[1]).isEqualTo(0.5);
    assertThat(msp[2]).isCloseTo(sigmoid1, within(1e-15));
    assertThat(msp[3]).isEqualTo(1.0);
  }

  @Test
  void negativeEnergyIsHigherForConfidentInputs() {
    // E(x) = -logsumexp(x): a confident, large-logit input has lower energy, so a higher score.
    double[] s = OodMetrics.negativeEnergy(new float[][] {{10f, 0f}, {0f, 0f}});
    assertThat(s[0]).isCloseTo(10 + Math.log1p(Math.exp(-10)), within(1e-12));
    assertThat(s[1]).isCloseTo(Math.log(2), within(1e-15));
    assertThat(s[0]).isGreaterThan(s[1]);
  }

  @Test
  void reportOnLogitsSeparatesConfidentFromFlatRows() {
    float[][] in = {{9f, 0f, 0f}, {0f, 8f, 1f}, {0f, 0f, 7f}};
    float[][] out = {{0.1f, 0f, 0f}, {0f, 0.2f, 0.1f}};
    OodMetrics m = OodMetrics.of(in, out);
    assertThat(m.msp().auroc()).isEqualTo(1.0);
    assertThat(m.msp().fprAt95Tpr()).isEqualTo(0.0);
    assertThat(m.energy().auroc()).isEqualTo(1.0);
    assertThat(m.energy().fprAt95Tpr()).isEqualTo(0.0);
    // Reversed roles: every detection is wrong.
    OodMetrics r = OodMetrics.of(out, in);
    assertThat(r.msp().auroc()).isEqualTo(0.0);
    assertThat(r.energy().fprAt95Tpr()).isEqualTo(1.0);

    JsonObject o = JsonParser.parseString(m.toJson()).getAsJsonObject();
    assertThat(o.get("nIn").getAsInt()).isEqualTo(3);
    assertThat(o.get("nOut").getAsInt()).isEqualTo(2);
    assertThat(o.getAsJsonObject("msp").get("auroc").getAsDouble()).isEqualTo(1.0);
    assertThat(o.getAsJsonObject("energy").get("fpr95").getAsDouble()).isEqualTo(0.0);
    assertThat(m.toString()).contains("msp").contains("energy").contains("AUROC");
  }

  @Test
  void refusesMismatchedOrBrokenInput() {
    assertThatThrownBy(() -> OodMetrics.of(new float[][] {{1, 2}}, new float[][] {{1, 2, 3}}))
        .hasMessageContaining("2 and 3 columns");
    assertThatThrownBy(() -> OodMetrics.auroc(new double[] {Double.NaN}, new double[] {1}))
        .hasMessageContaining("NaN");
    assertThatThrownBy(() -> OodMetrics.fprAtTpr(new double[] {1}, new double[] {1}, 0))
        .hasMessageContaining("not in (0, 1]");
    assertThatThrownBy(() -> OodMetrics.auroc(new double[0], new double[] {1}))
        .hasMessageContaining("both kinds");
  }
}
