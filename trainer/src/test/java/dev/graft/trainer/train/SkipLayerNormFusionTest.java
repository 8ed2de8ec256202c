package dev.graft.trainer.train;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.OpCensus;
import dev.graft.ir.analysis.Verifier;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.infer.ShapeInference;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.trainer.autodiff.Backprop;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.assertj.core.data.Offset;
import org.junit.jupiter.api.Test;

/**
 * SkipLayerNormFusion against ORT's run of the unfused ops with its graph optimizations off (the
 * oracle): the same outputs, and the same gradients of a loss through the fused node as through
 * the Adds and LayerNormalizations (whose rules GradientCheckTest checks against finite
 * differences, as it does the fused node's rule). On the real MiniLM, the training copy runs its
 * 13 LayerNorms fused (MiniLmGradientTest checks its LayerNorm gradients against finite
 * differences, GeluFusionTest its logits against the forward model's).
 */
class SkipLayerNormFusionTest {
  private static final long[] DIMS = {2, 3, 8};

  /**
   * y1 = LN(Add(Add(bias, m), r)) (bias first, as the exporters write it), then y2 = LN(Add(y1,
   * r2)) without beta; loss = ReduceSum(y2 * w).
   */
  private static Model twoNorms(DataType t, long axis) {
    GraphBuilder b = GraphBuilder.create("norms");
    Random rnd = new Random(3);
    Value m = b.input("m", t, 2, 3, 8);
    Value r = b.input("r", t, 2, 3, 8);
    Value r2 = b.input("r2", t, 2, 3, 8);
    Value bias = b.initializer("bias", vector(t, rnd, 8));
    Value gamma = b.initializer("gamma", vector(t, rnd, 8));
    Value beta = b.initializer("beta", vector(t, rnd, 8));
    Value gamma2 = b.initializer("gamma2", axis == -1 ? vector(t, rnd, 8) : vector(t, rnd, 3, 8));
    Value s = b.op("Add", b.op("Add", bias, m), r);
    Value y1 = b.op("LayerNormalization", List.of(s, gamma, beta), Attr.of("epsilon", 1e-5f));
    Value y2 = b.op("LayerNormalization", List.of(b.op("Add", y1, r2), gamma2), Attr.of("axis", axis));
    b.output("y2", y2);
    Value w = b.initializer("w", vector(t, rnd, DIMS));
    b.output("loss", b.op("ReduceSum", List.of(b.op("Mul", y2, w)), Attr.of("keepdims", 0L)));
    Model model = b.model(17);
    ShapeInference.infer(model);
    return model;
  }

  private static Tensor vector(DataType t, Random rnd, long... dims) {
    int n = (int) java.util.Arrays.stream(dims).reduce(1, Math::multiplyExact);
    float[] v = random(rnd, n);
    if (t == DataType.FLOAT) return DenseTensor.ofFloats(null, dims, v);
    double[] d = new double[n];
    for (int i = 0; i < n; i++) d[i] = v[i];
    return DenseTensor.ofDoubles(null, dims, d);
  }

  private static float[] random(Random rnd, int n) {
    float[] v = new float[n];
    for (int i = 0; i < n; i++) v[i] = (float) (2 * rnd.nextDouble() - 1);
    return v;
  }

  private static Map<String, Tensor> feeds() {
    Random rnd = new Random(9);
    Map<String, Tensor> f = new HashMap<>();
    for (String name : List.of("m", "r", "r2")) f.put(name, DenseTensor.ofFloats(name, DIMS, random(rnd, 48)));
    return f;
  }

  /** Appends the gradients of 'loss' with respect to the inputs and to bias and gamma as outputs. */
  private static List<String> withGradients(Model model) {
    Graph g = model.graph();
    List<Value> wrt = new ArrayList<>();
    for (String name : List.of("m", "r", "r2", "bias", "gamma", "beta", "gamma2")) wrt.add(g.valueOrThrow(name));
    Map<Value, Value> grads = Backprop.gradients(model, g.valueOrThrow("loss"), wrt);
    List<String> names = new ArrayList<>();
    for (Value v : wrt) {
      Value d = grads.get(v);
      if (d.type().isEmpty()) d.setTypeOf(v);
      g.addOutput(d);
      names.add(d.name());
    }
    return names;
  }

  @Test
  void fusesResidualAndBiasAddsWithTheSameOutputsAndGradients() throws Exception {
    Model unfused = twoNorms(DataType.FLOAT, -1);
    List<String> want = withGradients(unfused);
    Model fused = twoNorms(DataType.FLOAT, -1);

    assertThat(SkipLayerNormFusion.fuse(fused)).hasSize(2);
    assertThat(OpCensus.of(fused.graph()))
        .containsEntry("com.microsoft:SkipLayerNormalization", 2)
        .doesNotContainKeys("LayerNormalization", "Add");
    assertThat(fused.opsets()).containsEntry("com.microsoft", 1L);
    assertThat(Verifier.problems(fused)).isEmpty();
    // The first takes the bias Add's operands: m as input, r as skip, the bias as its fifth input.
    Node first = fused.graph().nodes().stream().filter(n -> n.opType().equals("SkipLayerNormalization")).findFirst().orElseThrow();
    assertThat(first.inputs()).extracting(Value::name).containsExactly("m", "r", "gamma", "beta", "bias");
    List<String> got = withGradients(fused);

    Map<String, float[]> before = runUnoptimized(unfused, feeds());
    Map<String, float[]> after = runUnoptimized(fused, feeds());
    assertClose(after.get("y2"), before.get("y2"), 1e-5, "y2");
    for (int i = 0; i < want.size(); i++) {
      assertClose(after.get(got.get(i)), before.get(want.get(i)), 1e-4, want.get(i));
    }
  }

  @Test
  void leavesAloneWhatTheKernelDoesNotTake() {
    // Normalising over the last two axes: only the first LayerNorm is fused.
    Model twoAxes = twoNorms(DataType.FLOAT, 1);
    assertThat(SkipLayerNormFusion.fuse(twoAxes)).hasSize(1);
    assertThat(OpCensus.of(twoAxes.graph())).containsEntry("LayerNormalization", 1);

    // float64: the fusion is for the float32 training copy; nothing changes.
    Model doubles = twoNorms(DataType.DOUBLE, -1);
    assertThat(SkipLayerNormFusion.fuse(doubles)).isEmpty();
    assertThat(doubles.opsets()).doesNotContainKey("com.microsoft");

    // A residual sum that is also a graph output stays; the other LayerNorm is fused.
    Model shared = twoNorms(DataType.FLOAT, -1);
    Node norm = shared.graph().nodes().stream().filter(n -> n.is("LayerNormalization")).findFirst().orElseThrow();
    shared.graph().addOutput(norm.input(0));
    assertThat(SkipLayerNormFusion.fuse(shared)).hasSize(1);
    assertThat(OpCensus.of(shared.graph())).containsEntry("LayerNormalization", 1);
  }

  private static void assertClose(float[] got, float[] want, double tol, String what) {
    assertThat(got).as(what).hasSameSizeAs(want);
    for (int i = 0; i < want.length; i++) {
      assertThat((double) got[i]).as("%s[%s]", what, i).isCloseTo(want[i], Offset.offset(tol * (1 + Math.abs(want[i]))));
    }
  }

  private static Map<String, float[]> runUnoptimized(Model m, Map<String, Tensor> feeds) throws Exception {
    Map<String, float[]> out = new LinkedHashMap<>();
    for (Map.Entry<String, Tensor> e : OrtRun.runUnoptimized(m, feeds).entrySet()) out.put(e.getKey(), e.getValue().toFloatArray());
    return out;
  }
}
