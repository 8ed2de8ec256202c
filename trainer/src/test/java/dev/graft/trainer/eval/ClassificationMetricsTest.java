package dev.graft.trainer.eval;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class ClassificationMetricsTest {
  private static final List<String> ABC = List.of("a", "b", "c");

  /** Logits whose argmax is {@code predicted[i]}: 1 there, 0 elsewhere. */
  private static float[][] oneHot(int[] predicted, int k) {
    float[][] logits = new float[predicted.length][k];
    for (int i = 0; i < predicted.length; i++) logits[i][predicted[i]] = 1f;
    return logits;
  }

  @Test
  void handWorkedThreeClassExample() {
    // truth  0 0 0 1 1 2
    // pred   0 0 1 1 2 2
    int[] labels = {0, 0, 0, 1, 1, 2};
    int[] predicted = {0, 0, 1, 1, 2, 2};
    ClassificationMetrics m = ClassificationMetrics.of(labels, oneHot(predicted, 3), ABC);

    assertThat(m.confusion()).isDeepEqualTo(new long[][] {{2, 1, 0}, {0, 1, 1}, {0, 0, 1}});
    assertThat(m.count()).isEqualTo(6);
    assertThat(m.accuracy()).isEqualTo(4.0 / 6);
    // class a: tp 2, predicted 2, support 3
    assertThat(m.precision(0)).isEqualTo(1.0);
    assertThat(m.recall(0)).isEqualTo(2.0 / 3);
    assertThat(m.f1(0)).isCloseTo(0.8, within(1e-15));
    // class b: tp 1, predicted 2, support 2
    assertThat(m.precision(1)).isEqualTo(0.5);
    assertThat(m.recall(1)).isEqualTo(0.5);
    assertThat(m.f1(1)).isEqualTo(0.5);
    // class c: tp 1, predicted 2, support 1
    assertThat(m.precision(2)).isEqualTo(0.5);
    assertThat(m.recall(2)).isEqualTo(1.0);
    assertThat(m.f1(2)).isCloseTo(2.0 / 3, within(1e-15));
    assertThat(m.macroF1()).isCloseTo((0.8 + 0.5 + 2.0 / 3) / 3, within(1e-15));
    assertThat(m.support(0)).isEqualTo(3);
    assertThat(m.predictedCount(2)).isEqualTo(2);
  }

  @Test
  void argmaxTakesTheLowestClassOnTiesAndHandlesInfinities() {
    float[][] logits = {
      {0.5f, 0.5f, 0.1f}, // tie between 0 and 1 -> 0
      {-1f, 3f, 3f}, // tie between 1 and 2 -> 1
      {Float.NEGATIVE_INFINITY, -1e30f, Float.NEGATIVE_INFINITY}, // -> 1
      {1f, Float.POSITIVE_INFINITY, Float.POSITIVE_INFINITY} // -> 1
    };
    ClassificationMetrics m = ClassificationMetrics.of(new int[] {0, 1, 1, 1}, logits, ABC);
    assertThat(m.accuracy()).isEqualTo(1.0);
    assertThat(m.confusion()[0][0]).isEqualTo(1);
    assertThat(m.confusion()[1][1]).isEqualTo(3);
  }

  @Test
  void zeroDenominatorsGiveZeroAndAbsentClassesLeaveTheMacroAverage() {
    // Four classes; class 3 neither occurs nor is predicted, class 2 is predicted but never true,
    // class 1 is true but never predicted.
    int[] labels = {0, 0, 1};
    int[] predicted = {0, 2, 0};
    ClassificationMetrics m =
        ClassificationMetrics.of(labels, oneHot(predicted, 4), List.of("w", "x", "y", "z"));
    assertThat(m.precision(1)).isZero(); // never predicted
    assertThat(m.recall(2)).isZero(); // no examples
    assertThat(m.f1(1)).isZero();
    assertThat(m.f1(2)).isZero();
    assertThat(m.f1(3)).isZero();
    // class 0: tp 1, fp 1, fn 1 -> f1 0.5; averaged over classes 0, 1, 2 (3 is absent).
    assertThat(m.f1(0)).isEqualTo(0.5);
    assertThat(m.macroF1()).isCloseTo(0.5 / 3, within(1e-15));
  }

  @Test
  void agreesWithDirectCountsOnRandomData() {
    SplittableRandom random = new SplittableRandom(7);
    for (int trial = 0; trial < 20; trial++) {
      int k = 2 + random.nextInt(5);
      int n = 1 + random.nextInt(200);
      int[] labels = new int[n];
      float[][] logits = new float[n][k];
      for (int i = 0; i < n; i++) {
        labels[i] = random.nextInt(k);
        for (int c = 0; c < k; c++) logits[i][c] = (float) random.nextGaussian();
      }
      ClassificationMetrics m = ClassificationMetrics.of(labels, logits);
      // Independent oracle: per class, loop over examples with an explicit max search.
      int[] pred = new int[n];
      for (int i = 0; i < n; i++) {
        float best = Float.NEGATIVE_INFINITY;
        for (int c = 0; c < k; c++) if (logits[i][c] > best) { best = logits[i][c]; pred[i] = c; }
      }
      int correct = 0;
      for (int i = 0; i < n; i++) if (pred[i] == labels[i]) correct++;
      assertThat(m.accuracy()).isCloseTo((double) correct / n, within(1e-15));
      double f1Sum = 0;
      int present = 0;
      for (int c = 0; c < k; c++) {
        int tp = 0, predictedC = 0, trueC = 0;
        for (int i = 0; i < n; i++) {
          if (pred[i] == c) predictedC++;
          if (labels[i] == c) trueC++;
          if (pred[i] == c && labels[i] == c) tp++;
        }
        double p = predictedC == 0 ? 0 : (double) tp / predictedC;
        double r = trueC == 0 ? 0 : (double) tp / trueC;
        double f1 = p + r == 0 ? 0 : 2 * p * r / (p + r);
        assertThat(m.precision(c)).isCloseTo(p, within(1e-12));
        assertThat(m.recall(c)).isCloseTo(r, within(1e-12));
        assertThat(m.f1(c)).isCloseTo(f1, within(1e-12));
        if (predictedC + trueC > 0) {
          f1Sum += f1;
          present++;
        }
      }
      assertThat(m.macroF1()).isCloseTo(f1Sum / present, within(1e-12));
      long total = 0;
      for (long[] row : m.confusion()) for (long v : row) total += v;
      assertThat(total).isEqualTo(n);
    }
  }

  @Test
  void jsonHoldsTheHeadlineNumbersAndTheMatrix() {
    ClassificationMetrics m =
        ClassificationMetrics.of(new int[] {0, 1, 1}, oneHot(new int[] {0, 1, 0}, 2), List.of("neg", "pos"));
    JsonObject o = JsonParser.parseString(m.toJson()).getAsJsonObject();
    assertThat(o.get("accuracy").getAsDouble()).isEqualTo(2.0 / 3);
    assertThat(o.get("macroF1").getAsDouble()).isEqualTo(m.macroF1());
    assertThat(o.get("count").getAsInt()).isEqualTo(3);
    assertThat(o.getAsJsonArray("confusion").toString()).isEqualTo("[[1,0],[1,1]]");
    JsonObject pos = o.getAsJsonArray("classes").get(1).getAsJsonObject();
    assertThat(pos.get("name").getAsString()).isEqualTo("pos");
    assertThat(pos.get("precision").getAsDouble()).isEqualTo(1.0);
    assertThat(pos.get("recall").getAsDouble()).isEqualTo(0.5);
    assertThat(pos.get("support").getAsLong()).isEqualTo(2);
  }

  @Test
  void tableNamesClassesAndShowsTheMatrix() {
    ClassificationMetrics m =
        ClassificationMetrics.of(new int[] {0, 1, 1}, oneHot(new int[] {0, 1, 0}, 2), List.of("neg", "pos"));
    String table = m.toString();
    assertThat(table).contains("accuracy  0.6667").contains("macro-F1  0.6667");
    assertThat(table).containsPattern("pos\\s+1\\.0000\\s+0\\.5000\\s+0\\.6667\\s+2");
    assertThat(table).containsPattern("(?m)^neg\\s+1\\s+0$").containsPattern("(?m)^pos\\s+1\\s+1$");
  }

  @Test
  void refusesBadInputWithUsefulMessages() {
    assertThatThrownBy(() -> ClassificationMetrics.of(new int[] {0, 2}, oneHot(new int[] {0, 1}, 2)))
        .hasMessageContaining("example 1 has label 2, not a class id in [0, 2)");
    assertThatThrownBy(() -> ClassificationMetrics.of(new int[] {-1}, oneHot(new int[] {0}, 2)))
        .hasMessageContaining("Unlabelled");
    assertThatThrownBy(() -> ClassificationMetrics.of(new int[] {0}, new float[][] {{0f, Float.NaN}}))
        .hasMessageContaining("row 0 of the logits holds NaN at class 1");
    assertThatThrownBy(() -> ClassificationMetrics.of(new int[] {0, 1}, oneHot(new int[] {0}, 2)))
        .hasMessageContaining("2 labels for 1 rows");
    assertThatThrownBy(
            () -> ClassificationMetrics.of(new int[] {0, 1}, new float[][] {{1, 2}, {1, 2, 3}}))
        .hasMessageContaining("row 1 of the logits has 3 columns, expected 2");
  }
}
