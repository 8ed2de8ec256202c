package dev.graft.trainer.train;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.ir.DataType;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
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
import org.junit.jupiter.api.Test;

/**
 * GeluFusion against ORT's own run of the unfused ops (the oracle), on both writings of the Erf
 * GELU, and on the real MiniLM's training copy: its eval graph (fused) gives the forward model's
 * (unfused) logits.
 */
class GeluFusionTest {
  private static final long[] DIMS = {2, 3, 8};

  /** Two GELUs of x: Div/Erf/Add/Mul/Mul(0.5) and Mul(1/sqrt 2)/Erf/Add(1, e)/Mul(Mul(0.5, x), a). */
  private static Model twoGelus(DataType t, float half) {
    GraphBuilder b = GraphBuilder.create("gelus");
    Value x = b.input("x", t, 2, 3, 8);
    Value a = b.op("Add", b.op("Erf", b.op("Div", x, scalar(b, t, (float) Math.sqrt(2)))), scalar(b, t, 1f));
    b.output("ya", b.op("Mul", b.op("Mul", x, a), scalar(b, t, half)));
    Value a2 = b.op("Add", scalar(b, t, 1f), b.op("Erf", b.op("Mul", x, scalar(b, t, (float) (1 / Math.sqrt(2))))));
    b.output("yb", b.op("Mul", b.op("Mul", scalar(b, t, 0.5f), x), a2));
    return b.model(17);
  }

  private static Value scalar(GraphBuilder b, DataType t, float v) {
    return t == DataType.DOUBLE ? b.constant(DenseTensor.ofDoubles(null, new long[0], v)) : b.scalar(v);
  }

  private static Map<String, Tensor> feeds(DataType t) {
    Random rnd = new Random(5);
    int n = 2 * 3 * 8;
    double[] v = new double[n];
    for (int i = 0; i < n; i++) v[i] = 6 * rnd.nextDouble() - 3;
    if (t == DataType.DOUBLE) return Map.of("x", DenseTensor.ofDoubles("x", DIMS, v));
    float[] f = new float[n];
    for (int i = 0; i < n; i++) f[i] = (float) v[i];
    return Map.of("x", DenseTensor.ofFloats("x", DIMS, f));
  }

  @Test
  void fusesBothWritingsIntoOneContribGeluWithTheSameOutputs() throws Exception {
    Model m = twoGelus(DataType.FLOAT, 0.5f);
    Map<String, Tensor> before = OrtRun.run(m, feeds(DataType.FLOAT));

    assertThat(GeluFusion.fuse(m)).hasSize(2);

    assertThat(OpCensus.of(m.graph())).containsEntry("com.microsoft:Gelu", 2).doesNotContainKeys("Erf", "Div", "Mul", "Add");
    assertThat(m.opsets()).containsEntry("com.microsoft", 1L);
    assertThat(Verifier.problems(m)).isEmpty();
    assertThat(m.graph().outputs()).extracting(v -> v.name()).containsExactly("ya", "yb");
    Map<String, Tensor> after = OrtRun.run(m, feeds(DataType.FLOAT));
    for (String y : List.of("ya", "yb")) {
      float[] want = before.get(y).toFloatArray();
      float[] got = after.get(y).toFloatArray();
      for (int i = 0; i < want.length; i++) {
        assertThat((double) got[i]).as("%s[%s]", y, i).isCloseTo(want[i], org.assertj.core.data.Offset.offset(1e-5));
      }
    }
  }

  @Test
  void leavesAloneWhatIsNotThatGelu() {
    // Another constant than 0.5 in the first writing: only the second is fused.
    Model wrongHalf = twoGelus(DataType.FLOAT, 0.6f);
    assertThat(GeluFusion.fuse(wrongHalf)).hasSize(1);
    assertThat(OpCensus.of(wrongHalf.graph())).containsEntry("Erf", 1);

    // float64: the contrib kernel is float32, so nothing changes.
    Model doubles = twoGelus(DataType.DOUBLE, 0.5f);
    assertThat(GeluFusion.fuse(doubles)).isEmpty();
    assertThat(doubles.opsets()).doesNotContainKey("com.microsoft");

    // An intermediate that is also a graph output stays.
    Model shared = twoGelus(DataType.FLOAT, 0.5f);
    Node erf = shared.graph().nodes().stream().filter(n -> n.is("Erf")).findFirst().orElseThrow();
    shared.graph().addOutput(erf.output());
    assertThat(GeluFusion.fuse(shared)).hasSize(1);
    assertThat(OpCensus.of(shared.graph())).containsEntry("Erf", 1).containsEntry("com.microsoft:Gelu", 1);
  }

  @Test
  void miniLmTrainingCopyRunsItsSixGelusFusedWithTheForwardModelsLogits() throws Exception {
    Model model = MiniLmGradientTest.miniLmClassifier();
    TrainStepGraph graphs =
        TrainStepGraph.builder(model).trainables(List.of("encoder.layer.5.output.LayerNorm.bias")).build();
    Model step = graphs.trainStep();
    assertThat(OpCensus.of(step.graph())).containsEntry("com.microsoft:Gelu", 6);
    // SkipLayerNormFusion: every LayerNorm (12 after a residual Add, the embeddings' after theirs).
    assertThat(OpCensus.of(step.graph()))
        .containsEntry("com.microsoft:SkipLayerNormalization", 13)
        .doesNotContainKey("LayerNormalization");
    // Every Erf left is a backward node's (the gradient rule recomputes erf(x / sqrt 2)).
    assertThat(step.graph().nodes().stream().filter(n -> n.is("Erf")).map(Node::name)).allMatch(n -> n.startsWith("grad/"));

    Map<String, Tensor> feeds = new HashMap<>();
    long[] dims = {2, 8};
    feeds.put("input_ids", DenseTensor.ofLongs("input_ids", dims, 101, 2023, 3185, 2003, 2307, 102, 0, 0, 101, 1045, 2293, 2009, 999, 2200, 2204, 102));
    feeds.put("attention_mask", DenseTensor.ofLongs("attention_mask", dims, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1));
    feeds.put("token_type_ids", DenseTensor.ofLongs("token_type_ids", dims, new long[16]));
    float[] want = OrtRun.run(graphs.forward(), feeds).get("logits").toFloatArray();
    feeds.put("labels", DenseTensor.ofLongs("labels", new long[] {2}, 0, 1));
    for (TrainStepGraph.Param p : graphs.params()) feeds.put(p.name(), model.graph().initializer(p.name()).get().initializer().get());
    float[] got = OrtRun.run(graphs.eval(), feeds).get("logits").toFloatArray();
    assertThat(got).hasSameSizeAs(want);
    for (int i = 0; i < want.length; i++) {
      assertThat((double) got[i]).as("logit %s", i).isCloseTo(want[i], org.assertj.core.data.Offset.offset(1e-4));
    }
  }
}
