package dev.graft.trainer.train;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.OpCensus;
import dev.graft.ir.analysis.Verifier;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.assertj.core.data.Offset;
import org.junit.jupiter.api.Test;

/**
 * TransposedMatMulFusion against ORT's run of the unfused MatMul and Transpose with its graph
 * optimizations off (the oracle); what it must leave alone stays.
 */
class TransposedMatMulFusionTest {
  /**
   * y = MatMul(a, Transpose(b)) and z = MatMul(Transpose(c), a) over [2, 3, 4, 5] activations (the
   * attention's backward shapes), w = MatMul(a, Transpose(W)) on a constant W, and
   * v = MatMul(Transpose[0,2,1,3](a), d), which is not a swap of the last two axes.
   */
  private static Model graph() {
    GraphBuilder b = GraphBuilder.create("transposed");
    Value a = b.input("a", DataType.FLOAT, 2, 3, 4, 5);
    Value bb = b.input("b", DataType.FLOAT, 2, 3, 6, 5);
    Value c = b.input("c", DataType.FLOAT, 2, 3, 4, 7);
    Value d = b.input("d", DataType.FLOAT, 2, 4, 5, 6);
    float[] wv = new float[6 * 5];
    for (int i = 0; i < wv.length; i++) wv[i] = 0.1f * i - 1;
    Value w = b.initializer("W", DenseTensor.ofFloats("W", new long[] {6, 5}, wv));
    b.output("y", b.op("MatMul", a, b.op("Transpose", List.of(bb), Attr.ints("perm", 0, 1, 3, 2))));
    b.output("z", b.op("MatMul", b.op("Transpose", List.of(c), Attr.ints("perm", 0, 1, 3, 2)), a));
    b.output("w", b.op("MatMul", a, b.op("Transpose", List.of(w), Attr.ints("perm", 1, 0))));
    b.output("v", b.op("MatMul", b.op("Transpose", List.of(a), Attr.ints("perm", 0, 2, 1, 3)), d));
    return b.model(17);
  }

  private static Map<String, Tensor> feeds() {
    Random rnd = new Random(4);
    Map<String, Tensor> f = new HashMap<>();
    Map<String, long[]> shapes = Map.of("a", new long[] {2, 3, 4, 5}, "b", new long[] {2, 3, 6, 5}, "c", new long[] {2, 3, 4, 7},
        "d", new long[] {2, 4, 5, 6});
    for (Map.Entry<String, long[]> e : shapes.entrySet()) {
      float[] v = new float[(int) java.util.Arrays.stream(e.getValue()).reduce(1, Math::multiplyExact)];
      for (int i = 0; i < v.length; i++) v[i] = (float) rnd.nextGaussian();
      f.put(e.getKey(), DenseTensor.ofFloats(e.getKey(), e.getValue(), v));
    }
    return f;
  }

  @Test
  void foldsTheSwapOfTheLastTwoAxesOfActivationsIntoFusedMatMul() throws Exception {
    Model m = graph();
    Map<String, Tensor> want = OrtRun.runUnoptimized(m, feeds());

    assertThat(TransposedMatMulFusion.fuse(m)).hasSize(2);

    assertThat(OpCensus.of(m.graph()))
        .containsEntry("com.microsoft:FusedMatMul", 2)
        .containsEntry("MatMul", 2)
        .containsEntry("Transpose", 2);
    assertThat(m.opsets()).containsEntry("com.microsoft", 1L);
    assertThat(Verifier.problems(m)).isEmpty();
    Map<String, Tensor> got = OrtRun.runUnoptimized(m, feeds());
    for (String out : List.of("y", "z", "w", "v")) {
      float[] e = want.get(out).toFloatArray();
      float[] g = got.get(out).toFloatArray();
      assertThat(g).as(out).hasSameSizeAs(e);
      for (int i = 0; i < e.length; i++) assertThat((double) g[i]).as("%s[%s]", out, i).isCloseTo(e[i], Offset.offset(1e-5));
    }
  }

  @Test
  void leavesATransposeWithOtherUsesAlone() {
    Model m = graph();
    Value t = m.graph().nodes().stream().filter(n -> n.is("Transpose")).findFirst().orElseThrow().output();
    m.graph().addOutput(t);
    assertThat(TransposedMatMulFusion.fuse(m)).hasSize(1);
  }
}
