package dev.graft.trainer.train;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.graft.ir.DataType;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import java.util.HashMap;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The train-step graph's update against a closed form: y = x W + b with a mean squared error has
 * the gradient dW = x^T (2 (y - t) / n), db = sum_rows 2 (y - t) / n; AdamW (PyTorch's formulas)
 * and global-norm clipping are then computed here in double precision, step after step.
 */
class AdamWUpdateTest {
  private static final int N = 4, IN = 3, OUT = 2;

  private static Model linear(float[] w, float[] b) {
    GraphBuilder gb = GraphBuilder.create("linear");
    Value x = gb.input("x", DataType.FLOAT, "batch", IN);
    Value wv = gb.initializer("w", DenseTensor.ofFloats("w", new long[] {IN, OUT}, w));
    Value bv = gb.initializer("b", DenseTensor.ofFloats("b", new long[] {OUT}, b));
    Value y = gb.op("Add", gb.op("MatMul", x, wv), bv);
    gb.output("logits", y);
    gb.typed(y, DataType.FLOAT, "batch", (long) OUT);
    return gb.model(17);
  }

  /** Reference AdamW state for one parameter. */
  private static final class Ref {
    final double[] p, m, v;
    final boolean decay;

    Ref(float[] init, boolean decay) {
      p = new double[init.length];
      for (int i = 0; i < p.length; i++) p[i] = init[i];
      m = new double[p.length];
      v = new double[p.length];
      this.decay = decay;
    }

    void step(double[] g, double scale, AdamW hp, double lr, long t) {
      double bc1 = 1 - Math.pow(hp.beta1(), t), bc2 = 1 - Math.pow(hp.beta2(), t);
      for (int i = 0; i < p.length; i++) {
        double gi = g[i] * scale;
        m[i] = hp.beta1() * m[i] + (1 - hp.beta1()) * gi;
        v[i] = hp.beta2() * v[i] + (1 - hp.beta2()) * gi * gi;
        if (decay) p[i] *= 1 - lr * hp.weightDecay();
        p[i] -= lr / bc1 * m[i] / (Math.sqrt(v[i]) / Math.sqrt(bc2) + hp.epsilon());
      }
    }
  }

  @ParameterizedTest(name = "clip at {0}")
  @ValueSource(doubles = {0.0, 0.05})
  void matchesPyTorchAdamWWithDecoupledDecayOnMatricesOnly(double clip) throws Exception {
    Random rnd = new Random(3);
    float[] w = new float[IN * OUT], b = {0.1f, -0.2f}, x = new float[N * IN], target = new float[N * OUT];
    for (int i = 0; i < w.length; i++) w[i] = (float) rnd.nextGaussian();
    for (int i = 0; i < x.length; i++) x[i] = (float) rnd.nextGaussian();
    for (int i = 0; i < target.length; i++) target[i] = (float) rnd.nextGaussian();
    AdamW hp = new AdamW(0.8, 0.95, 1e-6, 0.1, AdamW.DecayOn.RANK_AT_LEAST_2);
    TrainStepGraph graphs =
        TrainStepGraph.builder(linear(w, b))
            .loss(Loss.meanSquaredError())
            .trainables(java.util.List.of("w", "b"))
            .optimizer(hp)
            .clipGradNorm(clip)
            .build();
    assertThat(graphs.params()).extracting(TrainStepGraph.Param::decay).containsExactly(true, false);
    Map<String, Tensor> batch =
        Map.of(
            "x", DenseTensor.ofFloats("x", new long[] {N, IN}, x),
            "labels", DenseTensor.ofFloats("labels", new long[] {N, OUT}, target));
    Ref rw = new Ref(w, true), rb = new Ref(b, false);
    LrSchedule schedule = LrSchedule.linear(0.05, 2, 6, 0.0);
    try (Trainer t = Trainer.builder(graphs).schedule(schedule).intraOpThreads(1).build()) {
      for (long step = 1; step <= 4; step++) {
        // Closed-form loss and gradient at the reference parameters.
        double[] gw = new double[IN * OUT], gb = new double[OUT];
        double loss = 0;
        for (int n = 0; n < N; n++) {
          for (int o = 0; o < OUT; o++) {
            double y = rb.p[o];
            for (int i = 0; i < IN; i++) y += x[n * IN + i] * rw.p[i * OUT + o];
            double d = y - target[n * OUT + o];
            loss += d * d / (N * OUT);
            double dy = 2 * d / (N * OUT);
            gb[o] += dy;
            for (int i = 0; i < IN; i++) gw[i * OUT + o] += x[n * IN + i] * dy;
          }
        }
        double norm = 0;
        for (double g : gw) norm += g * g;
        for (double g : gb) norm += g * g;
        norm = Math.sqrt(norm);
        double scale = clip > 0 ? Math.min(1, clip / (norm + 1e-6)) : 1;
        if (clip > 0) assertThat(scale).as("clipping is active").isLessThan(1);

        StepResult r = t.trainStep(batch);
        assertThat(r.step()).isEqualTo(step);
        assertThat(r.learningRate()).isEqualTo(schedule.lr(step));
        assertThat(r.loss()).isCloseTo(loss, within(1e-5 * Math.max(1, loss)));
        assertThat(r.gradNorm()).isCloseTo(norm, within(1e-5 * Math.max(1, norm)));
        rw.step(gw, scale, hp, schedule.lr(step), step);
        rb.step(gb, scale, hp, schedule.lr(step), step);

        Map<String, Tensor> s = t.stateTensors();
        assertClose(s.get("w"), rw.p, 2e-5);
        assertClose(s.get("b"), rb.p, 2e-5);
        assertClose(s.get(StateNames.m("w")), rw.m, 1e-5);
        assertClose(s.get(StateNames.v("b")), rb.v, 1e-6);
      }
    }
  }

  /**
   * y = x1 W1 + x2 W2 + b + c: W1 (3 x 2) and W2 (5 x 2) share their trailing dimension and so
   * are updated as one concatenated tensor, split 3 + 5; b and c (both 2, no decay) likewise. Each
   * parameter's new value, m and v must still be its own, against the per-parameter closed form.
   */
  @Test
  void parametersOfOneShapeFamilyAreUpdatedTogetherAndStayApart() throws Exception {
    int in2 = 5;
    Random rnd = new Random(5);
    float[] w1 = gauss(rnd, IN * OUT), w2 = gauss(rnd, in2 * OUT), b = {0.1f, -0.2f}, c = {0.3f, 0.05f};
    float[] x1 = gauss(rnd, N * IN), x2 = gauss(rnd, N * in2), target = gauss(rnd, N * OUT);
    GraphBuilder gb = GraphBuilder.create("two");
    Value x1v = gb.input("x1", DataType.FLOAT, "batch", IN);
    Value x2v = gb.input("x2", DataType.FLOAT, "batch", in2);
    Value w1v = gb.initializer("w1", DenseTensor.ofFloats("w1", new long[] {IN, OUT}, w1));
    Value w2v = gb.initializer("w2", DenseTensor.ofFloats("w2", new long[] {in2, OUT}, w2));
    Value bv = gb.initializer("b", DenseTensor.ofFloats("b", new long[] {OUT}, b));
    Value cv = gb.initializer("c", DenseTensor.ofFloats("c", new long[] {OUT}, c));
    Value y = gb.op("Add", gb.op("Add", gb.op("MatMul", x1v, w1v), gb.op("MatMul", x2v, w2v)), gb.op("Add", bv, cv));
    gb.output("logits", y);
    gb.typed(y, DataType.FLOAT, "batch", (long) OUT);
    AdamW hp = new AdamW(0.8, 0.95, 1e-6, 0.1, AdamW.DecayOn.RANK_AT_LEAST_2);
    double clip = 0.05;
    TrainStepGraph graphs =
        TrainStepGraph.builder(gb.model(17))
            .loss(Loss.meanSquaredError())
            .trainables(java.util.List.of("b", "w1", "c", "w2"))
            .optimizer(hp)
            .clipGradNorm(clip)
            .build();
    Model step = graphs.trainStep();
    assertThat(step.graph().nodes().stream().filter(n -> n.opType().equals("Split")).count())
        .as("one Split per state tensor (p, m, v) of each of the two groups")
        .isEqualTo(6);
    Map<String, Tensor> batch =
        Map.of(
            "x1", DenseTensor.ofFloats("x1", new long[] {N, IN}, x1),
            "x2", DenseTensor.ofFloats("x2", new long[] {N, in2}, x2),
            "labels", DenseTensor.ofFloats("labels", new long[] {N, OUT}, target));
    Ref r1 = new Ref(w1, true), r2 = new Ref(w2, true), rb = new Ref(b, false), rc = new Ref(c, false);
    LrSchedule schedule = LrSchedule.linear(0.05, 2, 6, 0.0);
    try (Trainer t = Trainer.builder(graphs).schedule(schedule).intraOpThreads(1).build()) {
      for (long stepNo = 1; stepNo <= 4; stepNo++) {
        double[] g1 = new double[IN * OUT], g2 = new double[in2 * OUT], gbias = new double[OUT];
        for (int n = 0; n < N; n++) {
          for (int o = 0; o < OUT; o++) {
            double yo = rb.p[o] + rc.p[o];
            for (int i = 0; i < IN; i++) yo += x1[n * IN + i] * r1.p[i * OUT + o];
            for (int i = 0; i < in2; i++) yo += x2[n * in2 + i] * r2.p[i * OUT + o];
            double dy = 2 * (yo - target[n * OUT + o]) / (N * OUT);
            gbias[o] += dy;
            for (int i = 0; i < IN; i++) g1[i * OUT + o] += x1[n * IN + i] * dy;
            for (int i = 0; i < in2; i++) g2[i * OUT + o] += x2[n * in2 + i] * dy;
          }
        }
        double norm = 0;
        for (double[] gs : new double[][] {g1, g2, gbias, gbias}) for (double g : gs) norm += g * g;
        norm = Math.sqrt(norm);
        double scale = Math.min(1, clip / (norm + 1e-6));
        assertThat(scale).as("clipping is active").isLessThan(1);
        StepResult r = t.trainStep(batch);
        assertThat(r.gradNorm()).isCloseTo(norm, within(1e-5 * Math.max(1, norm)));
        double lr = schedule.lr(stepNo);
        r1.step(g1, scale, hp, lr, stepNo);
        r2.step(g2, scale, hp, lr, stepNo);
        rb.step(gbias, scale, hp, lr, stepNo);
        rc.step(gbias, scale, hp, lr, stepNo);
        Map<String, Tensor> s = t.stateTensors();
        assertClose(s.get("w1"), r1.p, 2e-5);
        assertClose(s.get("w2"), r2.p, 2e-5);
        assertClose(s.get("b"), rb.p, 2e-5);
        assertClose(s.get("c"), rc.p, 2e-5);
        assertClose(s.get(StateNames.m("w2")), r2.m, 1e-5);
        assertClose(s.get(StateNames.v("w1")), r1.v, 1e-6);
        assertClose(s.get(StateNames.m("c")), rc.m, 1e-5);
      }
    }
  }

  private static float[] gauss(Random rnd, int n) {
    float[] a = new float[n];
    for (int i = 0; i < n; i++) a[i] = (float) rnd.nextGaussian();
    return a;
  }

  @Test
  void decayPolicyIsConfigurable() {
    Model m = linear(new float[IN * OUT], new float[OUT]);
    TrainStepGraph all =
        TrainStepGraph.builder(m)
            .trainables(java.util.List.of("w", "b"))
            .optimizer(AdamW.defaults().withDecayOn(AdamW.DecayOn.ALL))
            .build();
    assertThat(all.params()).extracting(TrainStepGraph.Param::decay).containsExactly(true, true);
    TrainStepGraph none =
        TrainStepGraph.builder(m)
            .trainables(java.util.List.of("w", "b"))
            .optimizer(AdamW.defaults().withWeightDecay(0))
            .build();
    assertThat(none.params()).extracting(TrainStepGraph.Param::decay).containsExactly(false, false);
  }

  private static void assertClose(Tensor got, double[] want, double tol) {
    float[] g = got.toFloatArray();
    assertThat(g).hasSize(want.length);
    Map<Integer, String> bad = new HashMap<>();
    for (int i = 0; i < g.length; i++) {
      if (Math.abs(g[i] - want[i]) > tol * Math.max(1, Math.abs(want[i]))) {
        bad.put(i, g[i] + " vs " + want[i]);
      }
    }
    assertThat(bad).as(got.name()).isEmpty();
  }
}
