package dev.graft.trainer.train;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.ir.DataType;
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
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.assertj.core.data.Offset;
import org.junit.jupiter.api.Test;

/**
 * FrozenWeightTransposes against ORT's run of the backward pass as Backprop writes it (MatMul of
 * the output gradient and Transpose(W), standard ops: the oracle, itself checked against finite
 * differences in GradientCheckTest), and on the real MiniLM's train step.
 */
class FrozenWeightTransposesTest {
  /**
   * h = MatMul(x, A), A trainable (a graph input); y = MatMul(h, W), W a frozen initializer;
   * loss = ReduceSum(y * y), and dA as an output. dA needs dh = dy @ W^T.
   */
  private static Model linearThroughFrozenWeight(boolean wFrozen) {
    GraphBuilder b = GraphBuilder.create("g");
    Value x = b.input("x", DataType.FLOAT, 2, 3, 4);
    Value a = b.input("A", DataType.FLOAT, 4, 5);
    Value w =
        wFrozen
            ? b.initializer("W", DenseTensor.ofFloats("W", new long[] {5, 6}, random(30, 7)))
            : b.input("W", DataType.FLOAT, 5, 6);
    Value y = b.op("MatMul", b.op("MatMul", x, a), w);
    Value loss = b.output("loss", b.op("ReduceSum", List.of(b.op("Mul", y, y)), dev.graft.ir.Attr.of("keepdims", 0L)));
    Model m = b.model(17);
    ShapeInference.infer(m);
    Map<Value, Value> grads = Backprop.gradients(m, loss, List.of(a));
    GraphBuilder.on(m.graph()).output("dA", grads.get(a));
    return m;
  }

  /** Transpose nodes reading {@code name} (the weight rule's Transpose of x is not one). */
  private static long transposesOf(Model m, String name) {
    return m.graph().nodes().stream().filter(n -> n.is("Transpose") && n.input(0).name().equals(name)).count();
  }

  private static float[] random(int n, long seed) {
    Random rnd = new Random(seed);
    float[] v = new float[n];
    for (int i = 0; i < n; i++) v[i] = (float) (2 * rnd.nextDouble() - 1);
    return v;
  }

  private static Map<String, Tensor> feeds() {
    return Map.of(
        "x", DenseTensor.ofFloats("x", new long[] {2, 3, 4}, random(24, 1)),
        "A", DenseTensor.ofFloats("A", new long[] {4, 5}, random(20, 2)));
  }

  @Test
  void backwardMatMulReadsTheFrozenWeightThroughFusedMatMulWithTheSameGradient() throws Exception {
    Model m = linearThroughFrozenWeight(true);
    assertThat(transposesOf(m, "W")).isEqualTo(1);
    Map<String, Tensor> before = OrtRun.run(m, feeds());

    assertThat(FrozenWeightTransposes.fuse(m)).isEqualTo(1);

    assertThat(OpCensus.of(m.graph())).containsEntry("com.microsoft:FusedMatMul", 1);
    assertThat(transposesOf(m, "W")).isZero();
    Node fused = m.graph().nodes().stream().filter(n -> n.opType().equals("FusedMatMul")).findFirst().orElseThrow();
    assertThat(fused.input(1).name()).isEqualTo("W");
    assertThat(fused.attrLong("transB", 0)).isEqualTo(1);
    assertThat(m.opsets()).containsEntry("com.microsoft", 1L);
    assertThat(Verifier.problems(m)).isEmpty();
    Map<String, Tensor> after = OrtRun.run(m, feeds());
    float[] want = before.get("dA").toFloatArray();
    float[] got = after.get("dA").toFloatArray();
    assertThat(got).hasSameSizeAs(want);
    for (int i = 0; i < want.length; i++) {
      assertThat((double) got[i]).as("dA[%s]", i).isCloseTo(want[i], Offset.offset(1e-5 * Math.max(1, Math.abs(want[i]))));
    }
  }

  @Test
  void leavesAWeightThatIsAGraphInputAlone() {
    // W fed at run time (a trainable in a train step): ORT fuses that Transpose itself, per run.
    Model m = linearThroughFrozenWeight(false);
    assertThat(FrozenWeightTransposes.fuse(m)).isZero();
    assertThat(transposesOf(m, "W")).isEqualTo(1);
    assertThat(OpCensus.of(m.graph())).doesNotContainKey("com.microsoft:FusedMatMul");
    assertThat(m.opsets()).doesNotContainKey("com.microsoft");
  }

  @Test
  void miniLmTrainStepReadsEveryFrozenLinearWeightUntransposed() {
    Model model = MiniLmGradientTest.miniLmClassifier();
    // LoRA-like placement: the trainable sits in layer 0, so every later linear's input gradient
    // is needed and reads its frozen weight.
    TrainStepGraph graphs =
        TrainStepGraph.builder(model).trainables(List.of("encoder.layer.0.attention.output.LayerNorm.bias")).build();
    Model step = graphs.trainStep();
    List<Node> transposedWeights =
        step.graph().nodes().stream().filter(n -> n.is("Transpose") && n.input(0).isInitializer()).toList();
    assertThat(transposedWeights).isEmpty();
    // Layers 1 to 5 (query, key, value, attention output, intermediate, output: 6 linears each)
    // and layer 0's intermediate and output; the head's classifier too.
    assertThat(OpCensus.of(step.graph()).get("com.microsoft:FusedMatMul")).isGreaterThanOrEqualTo(5 * 6 + 2);
    assertThat(Verifier.problems(step)).isEmpty();
  }
}
