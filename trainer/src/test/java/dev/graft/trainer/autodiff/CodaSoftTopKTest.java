package dev.graft.trainer.autodiff;

import static org.assertj.core.api.Assertions.assertThat;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.infer.ShapeInference;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.rewrite.peft.CodaSoftTopK;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * CoDA's soft top-k graph: its gradient against central differences, its selection against ORT's
 * own TopK at a low temperature, and padding never selected.
 */
class CodaSoftTopKTest {
  private static final OrtEnvironment ENV = OrtEnvironment.getEnvironment();
  private static final int B = 2;
  private static final int N = 10;
  /** Row 0 is all tokens; row 1 has 7 real tokens and 3 of padding. */
  private static final long[] MASK = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0};

  /** s, mask (int64, as attention_mask) and k in; lambda, the hard top-k indices and, with r, loss out. */
  private static Model graph(double temperature, int iterations, long k, boolean withLoss, float[] r) {
    GraphBuilder b = GraphBuilder.create("soft_topk");
    Value s = b.input("s", DataType.FLOAT, B, N);
    Value mask = b.input("mask", DataType.INT64, B, N);
    Value valid = b.op("Cast", List.of(mask), Attr.of("to", (long) DataType.BOOL.code()));
    Value lambda = CodaSoftTopK.build(b, s, valid, b.scalar((float) k), temperature, iterations, 17);
    b.output("lambda", lambda);
    b.typed(lambda, DataType.FLOAT, B, N);
    // The oracle: ORT's TopK over the scores with padding at -inf.
    Value masked = b.op("Where", valid, s, b.scalar(Float.NEGATIVE_INFINITY));
    List<Value> top = b.ops("TopK", 2, List.of(masked, b.int64s(k)), Attr.of("axis", -1L));
    b.output("indices", top.get(1));
    b.typed(top.get(1), DataType.INT64, B, k);
    if (withLoss) {
      Value rv = b.initializer("r", DenseTensor.ofFloats("r", new long[] {B, N}, r));
      Value loss = b.op("ReduceSum", List.of(b.op("Mul", lambda, rv)), Attr.of("keepdims", 0L));
      b.output("loss", loss);
      b.typed(loss, DataType.FLOAT);
    }
    Model m = b.model(17);
    ShapeInference.infer(m);
    return m;
  }

  private static Map<String, float[]> run(Model m, float[] s, Set<String> outs) throws OrtException {
    try (OrtSession session = ENV.createSession(ModelIO.toBytes(m), new OrtSession.SessionOptions());
        OnnxTensor st = OnnxTensor.createTensor(ENV, FloatBuffer.wrap(s), new long[] {B, N});
        OnnxTensor mt = OnnxTensor.createTensor(ENV, LongBuffer.wrap(MASK), new long[] {B, N});
        OrtSession.Result r = session.run(Map.of("s", st, "mask", mt), outs)) {
      java.util.HashMap<String, float[]> out = new java.util.HashMap<>();
      for (String o : outs) {
        OnnxTensor t = (OnnxTensor) r.get(o).orElseThrow();
        if (t.getInfo().type == ai.onnxruntime.OnnxJavaType.INT64) {
          long[] l = new long[(int) t.getInfo().getNumElements()];
          t.getLongBuffer().get(l);
          float[] f = new float[l.length];
          for (int i = 0; i < l.length; i++) f[i] = l[i];
          out.put(o, f);
        } else {
          float[] f = new float[(int) t.getInfo().getNumElements()];
          t.getFloatBuffer().get(f);
          out.put(o, f);
        }
      }
      return out;
    }
  }

  private static float[] scores(long seed) {
    Random rnd = new Random(seed);
    float[] s = new float[B * N];
    for (int i = 0; i < s.length; i++) s[i] = (float) (2 * rnd.nextDouble() - 1);
    return s;
  }

  @Test
  void gradientAgreesWithCentralDifferences() throws OrtException {
    Random rnd = new Random(7);
    float[] r = new float[B * N];
    for (int i = 0; i < r.length; i++) r[i] = (float) rnd.nextGaussian();
    float[] s = scores(3);
    Model fwd = graph(0.5, 6, 4, true, r);
    Model bwd = graph(0.5, 6, 4, true, r);
    Value sv = bwd.graph().valueOrThrow("s");
    Value g = Backprop.gradients(bwd, bwd.graph().valueOrThrow("loss"), List.of(sv)).get(sv);
    g.setTypeOf(sv);
    bwd.graph().addOutput(g);
    float[] analytic = run(bwd, s, Set.of(g.name())).get(g.name());
    double eps = 1e-2;
    double worst = 0;
    for (int c = 0; c < s.length; c++) {
      float keep = s[c];
      s[c] = (float) (keep + eps);
      double up = run(fwd, s, Set.of("loss")).get("loss")[0];
      s[c] = (float) (keep - eps);
      double down = run(fwd, s, Set.of("loss")).get("loss")[0];
      s[c] = keep;
      double fd = (up - down) / (2 * eps);
      assertThat(Math.abs(fd - analytic[c]))
          .as("d loss / d s[%s]: finite differences %s, backprop %s", c, fd, analytic[c])
          .isLessThanOrEqualTo(2e-2 * (1 + Math.abs(fd)));
      worst = Math.max(worst, Math.abs(analytic[c]));
      if (MASK[c] == 0) assertThat(analytic[c]).as("padding gets no gradient").isZero();
    }
    assertThat(worst).as("the gradient is not trivially zero").isGreaterThan(1e-2);
  }

  @Test
  void atLowTemperatureTheSelectionIsOrtsTopK() throws OrtException {
    // Scores on levels 0.2 apart (shuffled, jittered): the gaps are 10 temperatures wide, so the
    // selection is decided; closer scores share their weight, which is the point of a soft top-k.
    for (long seed = 0; seed < 5; seed++) {
      Random rnd = new Random(seed);
      float[] s = new float[B * N];
      for (int row = 0; row < B; row++) {
        List<Float> levels = new java.util.ArrayList<>();
        for (int i = 0; i < N; i++) levels.add((float) (-1 + 0.2 * i + 0.05 * rnd.nextDouble()));
        java.util.Collections.shuffle(levels, rnd);
        for (int i = 0; i < N; i++) s[row * N + i] = levels.get(i);
      }
      Map<String, float[]> out = run(graph(0.02, 150, 4, false, null), s, Set.of("lambda", "indices"));
      float[] lambda = out.get("lambda");
      float[] idx = out.get("indices");
      for (int row = 0; row < B; row++) {
        boolean[] picked = new boolean[N];
        for (int j = 0; j < 4; j++) picked[(int) idx[row * 4 + j]] = true;
        double sum = 0;
        for (int i = 0; i < N; i++) {
          float l = lambda[row * N + i];
          sum += l;
          if (picked[i]) assertThat(l).as("seed %s row %s position %s: TopK picks it", seed, row, i).isGreaterThan(0.99f);
          else assertThat(l).as("seed %s row %s position %s: TopK leaves it", seed, row, i).isLessThan(0.01f);
        }
        assertThat(sum).as("the weights sum to k").isCloseTo(4.0, org.assertj.core.data.Offset.offset(1e-2));
      }
    }
  }

  @Test
  void paddingIsNeverSelectedEvenWhenKExceedsTheRealTokens() throws OrtException {
    float[] s = scores(11);
    // Padding gets the highest raw scores: the mask, not the router, must keep it out.
    for (int i = 0; i < N; i++) if (MASK[N + i] == 0) s[N + i] = 5f;
    for (long k : new long[] {3, 9}) {
      float[] lambda = run(graph(0.3, 30, k, false, null), s, Set.of("lambda")).get("lambda");
      double realSum = 0;
      for (int i = 0; i < N; i++) {
        if (MASK[N + i] == 0) assertThat(lambda[N + i]).as("k=%s: padded position %s", k, i).isZero();
        else realSum += lambda[N + i];
      }
      // With k = 9 > 7 real tokens, every real one is fully selected; with k = 3 they share 3.
      assertThat(realSum).isCloseTo(Math.min(k, 7), org.assertj.core.data.Offset.offset(k > 7 ? 1e-4 : 2e-2));
    }
  }
}
