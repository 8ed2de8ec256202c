package dev.graft.trainer.taylor;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.graft.fixtures.TinyModels;
import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.Verifier;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.peft.TaylorChannelPass;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Taylor scores against oracles ORT computes on perturbed weights: for a loss linear in h,
 * removing a channel changes the loss by exactly its score; for any loss, the score is the
 * derivative of the loss along scaling the channel, which central differences give (exactly,
 * for a quadratic loss, up to rounding).
 */
class TaylorScoresTest {
  private static final OrtEnvironment ENV = OrtEnvironment.getEnvironment();
  private static final int ROWS = 4;
  private static final int IN = 3;
  private static final int OUT = 5;
  private final List<OnnxTensor> open = new ArrayList<>();

  @AfterEach
  void close() {
    open.forEach(OnnxTensor::close);
  }

  /** h = x·W [ROWS, OUT]; loss = sum(h·v) (linear) or sum((h - t)^2) / 2 (quadratic). */
  private static Model tiny(boolean quadratic) {
    SplittableRandom r = new SplittableRandom(5);
    GraphBuilder b = GraphBuilder.create("tiny");
    Value x = b.input("x", DataType.FLOAT, ROWS, IN);
    Value w = b.initializer("W", DenseTensor.ofFloats("W", new long[] {IN, OUT}, randoms(r, IN * OUT)));
    Value h = b.op("MatMul", x, w);
    b.graph().rename(h, "h");
    Value loss;
    if (quadratic) {
      Value t = b.input("t", DataType.FLOAT, ROWS, OUT);
      Value d = b.op("Sub", h, t);
      loss = b.op("Mul", b.op("ReduceSum", List.of(b.op("Mul", d, d)), Attr.of("keepdims", 0L)), b.scalar(0.5f));
    } else {
      Value v = b.initializer("v", DenseTensor.ofFloats("v", new long[] {OUT}, 1f, -2f, 0.5f, 3f, -1f));
      loss = b.op("ReduceSum", List.of(b.op("Mul", h, v)), Attr.of("keepdims", 0L));
    }
    b.output("loss", loss);
    b.typed(loss, DataType.FLOAT);
    return b.model(17);
  }

  private static float[] randoms(SplittableRandom r, int n) {
    float[] f = new float[n];
    for (int i = 0; i < n; i++) f[i] = (float) r.nextDouble(-1, 1);
    return f;
  }

  private OnnxTensor tensor(float[] data, long... shape) throws Exception {
    OnnxTensor t = OnnxTensor.createTensor(ENV, FloatBuffer.wrap(data), shape);
    open.add(t);
    return t;
  }

  private List<Map<String, OnnxTensor>> batches(boolean quadratic, long seed, boolean secondIsNegated) throws Exception {
    SplittableRandom r = new SplittableRandom(seed);
    float[] x1 = randoms(r, ROWS * IN);
    float[] x2 = secondIsNegated ? negate(x1) : randoms(r, ROWS * IN);
    List<Map<String, OnnxTensor>> out = new ArrayList<>();
    for (float[] x : List.of(x1, x2)) {
      if (quadratic) {
        out.add(Map.of("x", tensor(x, ROWS, IN), "t", tensor(randoms(r, ROWS * OUT), ROWS, OUT)));
      } else {
        out.add(Map.of("x", tensor(x, ROWS, IN)));
      }
    }
    return out;
  }

  private static float[] negate(float[] a) {
    float[] n = new float[a.length];
    for (int i = 0; i < a.length; i++) n[i] = -a[i];
    return n;
  }

  /** The loss summed over the batches, by ORT, with the weight {@code name} edited. */
  private static double loss(Model m, String name, UnaryOperator<float[]> edit, List<Map<String, OnnxTensor>> batches) throws Exception {
    Model copy = ModelIO.fromBytes(ModelIO.toBytes(m), null);
    Value w = copy.graph().initializer(name).orElseThrow();
    float[] data = edit.apply(w.initializer().orElseThrow().toFloatArray().clone());
    copy.graph().setInitializer(w, DenseTensor.ofFloats(name, w.initializer().orElseThrow().dims(), data));
    double sum = 0;
    try (OrtSession s = ENV.createSession(ModelIO.toBytes(copy), new OrtSession.SessionOptions())) {
      for (Map<String, OnnxTensor> feeds : batches) {
        try (OrtSession.Result r = s.run(feeds)) {
          sum += ((Number) r.get("loss").orElseThrow().getValue()).doubleValue();
        }
      }
    }
    return sum;
  }

  /** W with column c (output channel c of x·W) multiplied by {@code factor}. */
  private static UnaryOperator<float[]> scaleColumn(int c, double factor) {
    return w -> {
      for (int i = 0; i < IN; i++) w[i * OUT + c] *= (float) factor;
      return w;
    };
  }

  @Test
  void linearLossScoreIsTheExactLossChangeOfRemovingTheChannel() throws Exception {
    Model m = tiny(false);
    List<Map<String, OnnxTensor>> data = batches(false, 1, false);
    TaylorScores s = TaylorScores.compute(m, "loss", List.of("h"), data);
    double full = loss(m, "W", UnaryOperator.identity(), data);
    double[] scores = s.scores("h");
    assertThat(scores).hasSize(OUT);
    for (int c = 0; c < OUT; c++) {
      double removed = loss(m, "W", scaleColumn(c, 0), data);
      assertThat(scores[c]).as("channel %s", c).isCloseTo(Math.abs(full - removed), within(1e-4 + 1e-4 * Math.abs(full - removed)));
    }
    assertThat(java.util.Arrays.stream(scores).max().orElseThrow()).isGreaterThan(0.1);
  }

  @Test
  void quadraticLossScoreMatchesCentralDifferences() throws Exception {
    Model m = tiny(true);
    List<Map<String, OnnxTensor>> data = batches(true, 2, false);
    double[] scores = TaylorScores.compute(m, "loss", List.of("h"), data).scores("h");
    double eps = 1e-2;
    for (int c = 0; c < OUT; c++) {
      // d/de L(h_c * (1 + e)) at e = 0 is sum dL/dh_c * h_c; the loss is quadratic in e, so the
      // central difference is exact but for rounding.
      double fd = (loss(m, "W", scaleColumn(c, 1 + eps), data) - loss(m, "W", scaleColumn(c, 1 - eps), data)) / (2 * eps);
      assertThat(scores[c]).as("channel %s", c).isCloseTo(Math.abs(fd), within(2e-3 + 1e-3 * Math.abs(fd)));
    }
  }

  /** The absolute value comes after the sum over all data: opposite batches cancel. */
  @Test
  void batchesOfOppositeSignCancel() throws Exception {
    Model m = tiny(false);
    List<Map<String, OnnxTensor>> data = batches(false, 3, true);
    double[] both = TaylorScores.compute(m, "loss", List.of("h"), data).scores("h");
    double[] first = TaylorScores.compute(m, "loss", List.of("h"), data.subList(0, 1)).scores("h");
    for (int c = 0; c < OUT; c++) assertThat(both[c]).isCloseTo(0, within(1e-5));
    assertThat(java.util.Arrays.stream(first).max().orElseThrow()).isGreaterThan(0.1);
  }

  @Test
  void topRanksByScoreWithTheDefaultEighth() throws Exception {
    Model m = tiny(true);
    TaylorScores s = TaylorScores.compute(m, "loss", List.of("h"), batches(true, 4, false));
    double[] v = s.scores("h");
    List<Integer> top2 = s.top("h", 0.4);
    assertThat(top2).hasSize(2);
    for (int c = 0; c < OUT; c++) {
      if (!top2.contains(c)) assertThat(v[c]).isLessThanOrEqualTo(Math.min(v[top2.get(0)], v[top2.get(1)]));
    }
    assertThat(v[top2.get(0)]).isGreaterThanOrEqualTo(v[top2.get(1)]);
    // ceil(5 / 8) = 1 channel by default: the best one.
    assertThat(s.top()).isEqualTo(Map.of("h", List.of(top2.get(0))));
    assertThatThrownBy(() -> s.top("h", 0)).hasMessageContaining("must be in (0, 1]");
  }

  /**
   * On the MLP fixture with a loss on its logits: the scores of fc1 (a Gemm with bias) match
   * central differences on scaling its output channel (weight row and bias), and the top
   * channels feed TaylorChannelPass directly.
   */
  @Test
  void linearModuleScoresFeedTaylorChannelPass() throws Exception {
    Model m = TinyModels.mlp(2, 8, 2, 9);
    GraphBuilder b = GraphBuilder.on(m.graph()).atEnd();
    Value logits = m.graph().outputs().get(0);
    Value loss = b.op("ReduceSum", List.of(b.op("Mul", logits, logits)), Attr.of("keepdims", 0L));
    b.output("loss", loss);
    b.typed(loss, DataType.FLOAT);
    SplittableRandom r = new SplittableRandom(8);
    List<Map<String, OnnxTensor>> data = List.of(Map.of("x", tensor(randoms(r, 6 * 2), 6, 2)), Map.of("x", tensor(randoms(r, 3 * 2), 3, 2)));

    TaylorScores s = TaylorScores.forModules(m, "loss", List.of("fc1"), data);
    double[] scores = s.scores("fc1");
    assertThat(scores).hasSize(8);
    double eps = 1e-2;
    for (int c = 0; c < 8; c++) {
      int ch = c;
      // Gemm with transB: weight [out, in]; channel c is row c of the weight and entry c of the bias.
      UnaryOperator<float[]> up = w -> scaleRow(w, ch, 2, 1 + eps);
      UnaryOperator<float[]> down = w -> scaleRow(w, ch, 2, 1 - eps);
      double lp = loss(withEdit(m, "fc1.bias", v -> scaleRow(v, ch, 1, 1 + eps)), "fc1.weight", up, data);
      double lm = loss(withEdit(m, "fc1.bias", v -> scaleRow(v, ch, 1, 1 - eps)), "fc1.weight", down, data);
      double fd = (lp - lm) / (2 * eps);
      assertThat(scores[c]).as("channel %s", c).isCloseTo(Math.abs(fd), within(5e-3 + 5e-3 * Math.abs(fd)));
    }

    Map<String, ? extends List<Integer>> channels = s.top(0.25);
    assertThat(channels.get("fc1")).hasSize(2);
    Model tuned = ModelIO.fromBytes(ModelIO.toBytes(m), null);
    PassResult pr = new TaylorChannelPass(TaylorChannelPass.Config.of(channels)).run(tuned);
    Verifier.verify(tuned);
    assertThat(pr.parametersAdded()).isEqualTo(2 * 2);
    assertThat(TrainableRegistry.modulesOf(tuned, TaylorChannelPass.METHOD)).containsExactly("fc1");
    // The caller's model is untouched by scoring.
    assertThat(m.graph().outputs()).extracting(Value::name).containsExactly("logits", "loss");
  }

  /**
   * On a tiny Conv (x [2, 2, 5, 5], W [4, 2, 3, 3] with bias, pads 1, stride 2) and a quadratic
   * loss on its NCHW output: the scores come per output channel (axis 1, summed over batch and
   * the spatial grid) and match central differences on scaling that channel's weight slab and
   * bias; the top channels feed TaylorChannelPass's conv form.
   */
  @Test
  void convModuleScoresAreOverAxisOneAndMatchCentralDifferences() throws Exception {
    checkConvScores(true);
  }

  /** A Conv without bias (MobileNetV3's pointwise convs, before their BatchNorm). */
  @Test
  void convScoresWithoutBias() throws Exception {
    checkConvScores(false);
  }

  private void checkConvScores(boolean withBias) throws Exception {
    int n = 2, ci = 2, co = 4, side = 5, outSide = 3, per = ci * 3 * 3;
    SplittableRandom r = new SplittableRandom(11);
    GraphBuilder b = GraphBuilder.create("conv");
    Value x = b.input("x", DataType.FLOAT, n, ci, side, side);
    Value t = b.input("t", DataType.FLOAT, n, co, outSide, outSide);
    Value w = b.initializer("W", DenseTensor.ofFloats("W", new long[] {co, ci, 3, 3}, randoms(r, co * per)));
    Value bias = !withBias ? null : b.initializer("B", DenseTensor.ofFloats("B", new long[] {co}, randoms(r, co)));
    Value h =
        b.op("Conv", withBias ? List.of(x, w, bias) : List.of(x, w), Attr.ints("kernel_shape", 3, 3), Attr.ints("pads", 1, 1, 1, 1),
            Attr.ints("strides", 2, 2));
    Value d = b.op("Sub", h, t);
    Value loss = b.op("Mul", b.op("ReduceSum", List.of(b.op("Mul", d, d)), Attr.of("keepdims", 0L)), b.scalar(0.5f));
    b.output("loss", loss);
    b.typed(loss, DataType.FLOAT);
    Model m = b.model(17);
    String conv =
        dev.graft.rewrite.discover.ModuleDiscovery.discover(m).stream()
            .filter(TaylorChannelPass::tunable)
            .map(dev.graft.rewrite.discover.Module::name)
            .findFirst()
            .orElseThrow();
    List<Map<String, OnnxTensor>> data = new ArrayList<>();
    for (int i = 0; i < 2; i++) {
      data.add(
          Map.of(
              "x", tensor(randoms(r, n * ci * side * side), n, ci, side, side),
              "t", tensor(randoms(r, n * co * outSide * outSide), n, co, outSide, outSide)));
    }

    TaylorScores s = TaylorScores.forModules(m, "loss", List.of(conv), data);
    double[] scores = s.scores(conv);
    assertThat(scores).hasSize(co);
    double eps = 1e-2;
    for (int c = 0; c < co; c++) {
      int ch = c;
      Model mp = withBias ? withEdit(m, "B", v -> scaleRow(v, ch, 1, 1 + eps)) : m;
      Model mm = withBias ? withEdit(m, "B", v -> scaleRow(v, ch, 1, 1 - eps)) : m;
      double lp = loss(mp, "W", v -> scaleRow(v, ch, per, 1 + eps), data);
      double lm = loss(mm, "W", v -> scaleRow(v, ch, per, 1 - eps), data);
      double fd = (lp - lm) / (2 * eps);
      assertThat(scores[c]).as("channel %s", c).isCloseTo(Math.abs(fd), within(5e-3 + 5e-3 * Math.abs(fd)));
    }
    assertThat(java.util.Arrays.stream(scores).max().orElseThrow()).isGreaterThan(0.1);

    Map<String, ? extends List<Integer>> channels = s.top(0.5);
    assertThat(channels.get(conv)).hasSize(2);
    Model tuned = ModelIO.fromBytes(ModelIO.toBytes(m), null);
    PassResult pr = new TaylorChannelPass(TaylorChannelPass.Config.of(channels)).run(tuned);
    Verifier.verify(tuned);
    assertThat(pr.parametersAdded()).isEqualTo(2 * per);
    assertThat(TrainableRegistry.modulesOf(tuned, TaylorChannelPass.METHOD)).containsExactly(conv);
  }

  private static float[] scaleRow(float[] w, int row, int width, double factor) {
    for (int j = 0; j < width; j++) w[row * width + j] *= (float) factor;
    return w;
  }

  private static Model withEdit(Model m, String name, UnaryOperator<float[]> edit) {
    Model copy = ModelIO.fromBytes(ModelIO.toBytes(m), null);
    Value w = copy.graph().initializer(name).orElseThrow();
    float[] data = edit.apply(w.initializer().orElseThrow().toFloatArray().clone());
    copy.graph().setInitializer(w, DenseTensor.ofFloats(name, w.initializer().orElseThrow().dims(), data));
    return copy;
  }

  @Test
  void errorsSayWhatToDo() throws Exception {
    Model old = tiny(false);
    old.setOpset("", 11);
    assertThatThrownBy(() -> TaylorScores.compute(old, "loss", List.of("h"), List.of()))
        .hasMessageContaining("the model is at opset 11, older than Graft's working opset 17")
        .hasMessageContaining("graft convert IN OUT --opset 17");
    Model m = tiny(false);
    assertThatThrownBy(() -> TaylorScores.forModules(m, "loss", List.of("fc9"), List.of()))
        .hasMessageContaining("No linear or ungrouped conv module is named 'fc9'");
    assertThatThrownBy(() -> TaylorScores.compute(m, "lost", List.of("h"), List.of()))
        .hasMessageContaining("no loss value 'lost'");
    assertThatThrownBy(() -> TaylorScores.compute(m, "loss", List.of("h"), List.of()))
        .hasMessageContaining("at least one batch");
  }
}
