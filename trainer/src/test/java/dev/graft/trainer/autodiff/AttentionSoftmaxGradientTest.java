package dev.graft.trainer.autodiff;

import static org.assertj.core.api.Assertions.assertThat;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Shape;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.Verifier;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.DenseTensor;
import java.nio.DoubleBuffer;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Attention's softmax gradient, {@code ReduceSum(g * p)} read off the product {@code c = p @ v}
 * as {@code ReduceSum(dc * c)} (SoftmaxRules.attentionRowDot), against the closed form computed
 * here in double precision, and the generic form where the probabilities have a second reader.
 */
class AttentionSoftmaxGradientTest {
  private static final OrtEnvironment ENV = OrtEnvironment.getEnvironment();
  private static final int B = 2, H = 3, S = 4, D = 5;

  private static Node add(Graph g, String op, List<Value> in, String out, Attr... attrs) {
    return g.addNode(new Node("", op, in, List.of(out), List.of(attrs), op + "_" + out));
  }

  private static double[] random(Random rnd, int n) {
    double[] v = new double[n];
    for (int i = 0; i < n; i++) v[i] = rnd.nextGaussian();
    return v;
  }

  /** loss = sum(Softmax(x) @ v * r) [+ sum(Softmax(x) * q) when {@code q} is given]. */
  private static Graph attention(double[] r, double[] q) {
    Graph g = new Graph("attention");
    Value x = g.addInput("x", Type.tensor(DataType.DOUBLE, B, H, S, S));
    Value v = g.addInput("v", Type.tensor(DataType.DOUBLE, B, H, S, D));
    Value p = add(g, "Softmax", List.of(x), "p", Attr.of("axis", -1L)).output();
    p.setType(Type.tensor(DataType.DOUBLE, B, H, S, S));
    Value c = add(g, "MatMul", List.of(p, v), "c").output();
    c.setType(Type.tensor(DataType.DOUBLE, B, H, S, D));
    Value rv = g.addInitializer("r", DenseTensor.ofDoubles("r", new long[] {B, H, S, D}, r));
    Value cr = add(g, "Mul", List.of(c, rv), "cr").output();
    cr.setType(Type.tensor(DataType.DOUBLE, B, H, S, D));
    Value loss = add(g, "ReduceSum", List.of(cr), "l1", Attr.of("keepdims", 0L)).output();
    loss.setType(Type.tensor(DataType.DOUBLE, Shape.scalar()));
    if (q != null) {
      Value qv = g.addInitializer("q", DenseTensor.ofDoubles("q", new long[] {B, H, S, S}, q));
      Value pq = add(g, "Mul", List.of(p, qv), "pq").output();
      pq.setType(Type.tensor(DataType.DOUBLE, B, H, S, S));
      Value l2 = add(g, "ReduceSum", List.of(pq), "l2", Attr.of("keepdims", 0L)).output();
      l2.setType(Type.tensor(DataType.DOUBLE, Shape.scalar()));
      loss = add(g, "Add", List.of(loss, l2), "loss").output();
      loss.setType(Type.tensor(DataType.DOUBLE, Shape.scalar()));
    }
    g.addOutput(loss);
    return g;
  }

  /** d loss / d x in closed form: dp = r v^T (+ q), dx = p * (dp - rowsum(p * dp)). */
  private static double[] expected(double[] x, double[] v, double[] r, double[] q) {
    double[] dx = new double[x.length];
    for (int bh = 0; bh < B * H; bh++) {
      for (int i = 0; i < S; i++) {
        int row = (bh * S + i) * S;
        double max = Double.NEGATIVE_INFINITY;
        for (int j = 0; j < S; j++) max = Math.max(max, x[row + j]);
        double[] p = new double[S];
        double z = 0;
        for (int j = 0; j < S; j++) z += p[j] = Math.exp(x[row + j] - max);
        double[] dp = new double[S];
        double dot = 0;
        for (int j = 0; j < S; j++) {
          p[j] /= z;
          for (int k = 0; k < D; k++) dp[j] += r[(bh * S + i) * D + k] * v[(bh * S + j) * D + k];
          if (q != null) dp[j] += q[row + j];
          dot += p[j] * dp[j];
        }
        for (int j = 0; j < S; j++) dx[row + j] = p[j] * (dp[j] - dot);
      }
    }
    return dx;
  }

  private static double[] gradient(Graph g, double[] x, double[] v) throws Exception {
    Value xv = g.valueOrThrow("x");
    Map<Value, Value> grads = Backprop.gradients(g, g.valueOrThrow(g.outputs().get(0).name()), List.of(xv, g.valueOrThrow("v")));
    g.addOutput(grads.get(xv));
    Model m = new Model(g);
    m.setIrVersion(9L);
    m.setOpset("", 17);
    assertThat(Verifier.problems(m)).isEmpty();
    try (OrtSession s = ENV.createSession(ModelIO.toBytes(m), new OrtSession.SessionOptions());
        OnnxTensor xt = OnnxTensor.createTensor(ENV, DoubleBuffer.wrap(x), new long[] {B, H, S, S});
        OnnxTensor vt = OnnxTensor.createTensor(ENV, DoubleBuffer.wrap(v), new long[] {B, H, S, D});
        OrtSession.Result r = s.run(Map.of("x", xt, "v", vt), java.util.Set.of(grads.get(xv).name()))) {
      DoubleBuffer out = ((OnnxTensor) r.get(0)).getDoubleBuffer();
      double[] d = new double[out.remaining()];
      out.get(d);
      return d;
    }
  }

  /** Whether the gradient graph multiplies the product's output c by its gradient. */
  private static boolean readsTheProduct(Graph g) {
    Value c = g.valueOrThrow("c");
    return c.uses().stream().anyMatch(u -> u.node().name().startsWith("grad/") && u.node().is("Mul"));
  }

  /**
   * Builds the graph (with a second reader of p when {@code secondReader}), differentiates it and
   * checks d loss / d x against the closed form; returns the differentiated graph.
   */
  private static Graph checkedAgainstClosedForm(long seed, boolean secondReader) throws Exception {
    Random rnd = new Random(seed);
    double[] x = random(rnd, B * H * S * S);
    double[] v = random(rnd, B * H * S * D);
    double[] r = random(rnd, B * H * S * D);
    double[] q = secondReader ? random(rnd, B * H * S * S) : null;
    Graph g = attention(r, q);
    double[] got = gradient(g, x, v);
    double[] want = expected(x, v, r, q);
    for (int i = 0; i < want.length; i++) {
      assertThat(got[i]).as("dx[%s]", i).isCloseTo(want[i], org.assertj.core.data.Offset.offset(1e-12));
    }
    return g;
  }

  @Test
  void attentionSoftmaxSumsOverTheProductNotTheScores() throws Exception {
    Graph g = checkedAgainstClosedForm(3, false);
    assertThat(readsTheProduct(g)).as("ReduceSum(dc * c) in the backward pass").isTrue();
    // No ReduceSum over the [.., s, s] scores: the only one sums the product's last axis.
    assertThat(g.nodes().stream().filter(n -> n.name().startsWith("grad/") && n.is("ReduceSum")))
        .allSatisfy(n -> assertThat(n.input(0).producer().orElseThrow().input(1).name()).isEqualTo("c"));
  }

  @Test
  void probabilitiesWithASecondReaderKeepTheGenericForm() throws Exception {
    Graph g = checkedAgainstClosedForm(4, true);
    assertThat(readsTheProduct(g)).isFalse();
  }
}
