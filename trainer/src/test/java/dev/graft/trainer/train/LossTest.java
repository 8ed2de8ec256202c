package dev.graft.trainer.train;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import dev.graft.ir.DataType;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every loss form against a closed form computed here: the eval graph's loss, and the gradient of
 * a trainable bias added to the logits (from the accumulate graph, whose sums start at zero) —
 * for cross-entropy sum_i keep_i (softmax_i - target_i) / max(1, sum_i keep_i).
 */
class LossTest {
  private static final int C = 4;

  /** logits = x + bias, x shaped [dims..., C]. */
  private static Model biasModel(Object... dims) {
    GraphBuilder b = GraphBuilder.create("bias");
    Object[] all = new Object[dims.length + 1];
    System.arraycopy(dims, 0, all, 0, dims.length);
    all[dims.length] = C;
    Value x = b.input("x", DataType.FLOAT, all);
    Value bias = b.initializer("bias", DenseTensor.ofFloats("bias", new long[] {C}, 0.3f, -0.1f, 0.2f, 0f));
    Value y = b.op("Add", x, bias);
    b.output("logits", y);
    b.typed(y, DataType.FLOAT, all);
    return b.model(17);
  }

  static Stream<Arguments> crossEntropyCases() {
    Loss.SoftmaxCrossEntropy ce = Loss.crossEntropy();
    return Stream.of(
        Arguments.of("operator", ce.withForm(Loss.CrossEntropyForm.OPERATOR), false),
        Arguments.of("log-softmax", ce.withForm(Loss.CrossEntropyForm.LOG_SOFTMAX), false),
        Arguments.of("smoothing 0.1", ce.withLabelSmoothing(0.1), false),
        Arguments.of("operator, ignore -100", ce.withForm(Loss.CrossEntropyForm.OPERATOR).withIgnoreIndex(-100), false),
        Arguments.of("log-softmax, ignore -100", ce.withForm(Loss.CrossEntropyForm.LOG_SOFTMAX).withIgnoreIndex(-100), false),
        Arguments.of("smoothing 0.2, ignore 3", ce.withLabelSmoothing(0.2).withIgnoreIndex(3), false),
        Arguments.of("tokens, operator, ignore -100", ce.withIgnoreIndex(-100), true),
        Arguments.of("tokens, smoothing 0.1, ignore -100", ce.withLabelSmoothing(0.1).withIgnoreIndex(-100), true));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("crossEntropyCases")
  void crossEntropyLossAndGradientMatchTheClosedForm(String name, Loss.SoftmaxCrossEntropy loss, boolean tokens)
      throws Exception {
    Model model = tokens ? biasModel("batch", "sequence") : biasModel("batch");
    long[] xDims = tokens ? new long[] {2, 3, C} : new long[] {6, C};
    long[] yDims = tokens ? new long[] {2, 3} : new long[] {6};
    Random rnd = new Random(name.hashCode());
    float[] x = new float[6 * C];
    for (int i = 0; i < x.length; i++) x[i] = (float) (2 * rnd.nextGaussian());
    long ignore = loss.ignoreIndex().orElse(-1);
    long[] y = {0, 3, ignore == 3 ? 3 : 1, 2, loss.ignoreIndex().isPresent() ? ignore : 1, 3};
    float[] bias = model.graph().initializer("bias").get().initializer().get().toFloatArray();

    // Closed form.
    double total = 0;
    double count = 0;
    double[] gradBias = new double[C];
    double s = loss.labelSmoothing();
    for (int i = 0; i < 6; i++) {
      if (loss.ignoreIndex().isPresent() && y[i] == ignore) continue;
      double max = Double.NEGATIVE_INFINITY;
      for (int c = 0; c < C; c++) max = Math.max(max, x[i * C + c] + bias[c]);
      double z = 0;
      for (int c = 0; c < C; c++) z += Math.exp(x[i * C + c] + bias[c] - max);
      for (int c = 0; c < C; c++) {
        double logp = x[i * C + c] + bias[c] - max - Math.log(z);
        double target = (c == y[i] ? 1 - s : 0) + s / C;
        total -= target * logp;
        gradBias[c] += Math.exp(logp) - target;
      }
      count++;
    }
    double want = total / Math.max(1, count);
    for (int c = 0; c < C; c++) gradBias[c] /= Math.max(1, count);

    check(model, loss, DenseTensor.ofFloats("x", xDims, x), DenseTensor.ofLongs("labels", yDims, y), want, gradBias);
  }

  @Test
  void meanSquaredErrorMatchesTheClosedForm() throws Exception {
    Model model = biasModel("batch");
    Random rnd = new Random(5);
    float[] x = new float[3 * C], t = new float[3 * C];
    for (int i = 0; i < x.length; i++) {
      x[i] = (float) rnd.nextGaussian();
      t[i] = (float) rnd.nextGaussian();
    }
    float[] bias = model.graph().initializer("bias").get().initializer().get().toFloatArray();
    double want = 0;
    double[] grad = new double[C];
    for (int i = 0; i < x.length; i++) {
      double d = x[i] + bias[i % C] - t[i];
      want += d * d / x.length;
      grad[i % C] += 2 * d / x.length;
    }
    check(
        model,
        Loss.meanSquaredError(),
        DenseTensor.ofFloats("x", new long[] {3, C}, x),
        DenseTensor.ofFloats("labels", new long[] {3, C}, t),
        want,
        grad);
  }

  @Test
  void huberMatchesTheClosedFormOnBothSidesOfDelta() throws Exception {
    Model model = biasModel("batch");
    double delta = 0.7;
    Random rnd = new Random(11);
    float[] x = new float[4 * C], t = new float[4 * C];
    for (int i = 0; i < x.length; i++) {
      x[i] = (float) (1.5 * rnd.nextGaussian());
      t[i] = (float) rnd.nextGaussian();
    }
    float[] bias = model.graph().initializer("bias").get().initializer().get().toFloatArray();
    double want = 0;
    double[] grad = new double[C];
    int quadratic = 0;
    for (int i = 0; i < x.length; i++) {
      double d = x[i] + bias[i % C] - t[i];
      boolean small = Math.abs(d) < delta;
      if (small) quadratic++;
      want += (small ? 0.5 * d * d : delta * (Math.abs(d) - 0.5 * delta)) / x.length;
      grad[i % C] += (small ? d : delta * Math.signum(d)) / x.length;
    }
    assertThat(quadratic).as("elements in the quadratic zone").isBetween(1, x.length - 1);
    check(
        model,
        Loss.huber(delta),
        DenseTensor.ofFloats("x", new long[] {4, C}, x),
        DenseTensor.ofFloats("labels", new long[] {4, C}, t),
        want,
        grad);
  }

  /**
   * The multiple-negatives ranking loss against a closed form in double: anchors are rows 0..n-1,
   * positives rows n..2n-1; pairs 1 and 3 share a group, so each is masked out of the other's
   * negatives. The bias gradient is the closed form's central difference.
   */
  @Test
  void multipleNegativesRankingMatchesTheClosedFormAndItsCentralDifferences() throws Exception {
    Model model = biasModel("rows");
    int n = 4;
    double scale = 2; // soft enough that the masked-out column matters
    long[] groups = {0, 1, 2, 1};
    Random rnd = new Random(3);
    float[] x = new float[2 * n * C];
    for (int i = 0; i < x.length; i++) x[i] = (float) rnd.nextGaussian();
    double[] bias = new double[C];
    float[] b0 = model.graph().initializer("bias").get().initializer().get().toFloatArray();
    for (int c = 0; c < C; c++) bias[c] = b0[c];
    double want = mnrl(x, bias, n, groups, scale);
    double[] grad = new double[C];
    double h = 1e-5;
    for (int c = 0; c < C; c++) {
      double[] up = bias.clone();
      double[] down = bias.clone();
      up[c] += h;
      down[c] -= h;
      grad[c] = (mnrl(x, up, n, groups, scale) - mnrl(x, down, n, groups, scale)) / (2 * h);
    }
    // The mask matters: without it the loss differs.
    assertThat(Math.abs(mnrl(x, bias, n, new long[] {0, 1, 2, 3}, scale) - want)).isGreaterThan(1e-3);
    check(
        model,
        Loss.multipleNegativesRanking(scale),
        DenseTensor.ofFloats("x", new long[] {2 * n, C}, x),
        DenseTensor.ofLongs("labels", new long[] {n}, groups),
        want,
        grad,
        1e-4);
  }

  private static double mnrl(float[] x, double[] bias, int n, long[] groups, double scale) {
    double[][] e = new double[2 * n][C];
    for (int r = 0; r < 2 * n; r++) {
      double norm = 0;
      for (int c = 0; c < C; c++) {
        e[r][c] = x[r * C + c] + bias[c];
        norm += e[r][c] * e[r][c];
      }
      for (int c = 0; c < C; c++) e[r][c] /= Math.sqrt(norm);
    }
    double loss = 0;
    for (int i = 0; i < n; i++) {
      double[] s = new double[n];
      double max = Double.NEGATIVE_INFINITY;
      for (int j = 0; j < n; j++) {
        for (int c = 0; c < C; c++) s[j] += e[i][c] * e[n + j][c];
        s[j] *= scale;
        if (j != i && groups[j] == groups[i]) s[j] -= 1e4;
        max = Math.max(max, s[j]);
      }
      double z = 0;
      for (int j = 0; j < n; j++) z += Math.exp(s[j] - max);
      loss -= s[i] - max - Math.log(z);
    }
    return loss / n;
  }

  private static void check(Model model, Loss loss, Tensor x, Tensor labels, double wantLoss, double[] wantGrad)
      throws Exception {
    check(model, loss, x, labels, wantLoss, wantGrad, 1e-5);
  }

  private static void check(
      Model model, Loss loss, Tensor x, Tensor labels, double wantLoss, double[] wantGrad, double tolerance)
      throws Exception {
    TrainStepGraph graphs = TrainStepGraph.builder(model).loss(loss).trainables(List.of("bias")).build();
    Tensor bias = model.graph().initializer("bias").get().initializer().get();
    Map<String, Tensor> feeds = new HashMap<>(Map.of("x", x, "labels", labels, "bias", bias));
    Map<String, Tensor> eval = OrtRun.run(graphs.eval(), feeds);
    assertThat((double) eval.get(StateNames.LOSS).toFloatArray()[0]).isCloseTo(wantLoss, within(tolerance));
    assertThat(eval.get(StateNames.LOSS).dims()).isEmpty();

    feeds.put(StateNames.gradSum("bias"), DenseTensor.ofFloats("", new long[] {C}, new float[C]));
    Map<String, Tensor> acc = OrtRun.run(graphs.accumulate(), feeds);
    float[] grad = acc.get(StateNames.updated(StateNames.gradSum("bias"))).toFloatArray();
    for (int c = 0; c < C; c++) {
      assertThat((double) grad[c]).as("dL/dbias[%s]", c).isCloseTo(wantGrad[c], within(tolerance));
    }
    assertThat(acc.get(StateNames.LOSS).toFloatArray()[0]).isEqualTo(eval.get(StateNames.LOSS).toFloatArray()[0]);
  }

  @Test
  void theOperatorFormRefusesLabelSmoothing() {
    assertThatThrownBy(() -> Loss.crossEntropy().withForm(Loss.CrossEntropyForm.OPERATOR).withLabelSmoothing(0.1))
        .hasMessageContaining("no label smoothing");
  }

  @Test
  void crossEntropyNeedsAStaticClassAxis() {
    GraphBuilder b = GraphBuilder.create("g");
    Value x = b.input("x", DataType.FLOAT, "batch", "classes");
    Value w = b.initializer("w", DenseTensor.ofFloats("w", new long[] {1}, 1f));
    Value y = b.op("Mul", x, w);
    b.output("logits", y);
    b.typed(y, DataType.FLOAT, "batch", "classes");
    TrainStepGraph graphs = TrainStepGraph.builder(b.model(17)).trainables(List.of("w")).build();
    assertThatThrownBy(graphs::eval).hasMessageContaining("number of classes").hasMessageContaining("'logits'");
  }
}
