package dev.graft.ir.convert;

import static dev.graft.ir.DataType.FLOAT;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.onnxruntime.OnnxTensor;
import dev.graft.ir.Attr;
import dev.graft.ir.Model;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.OpCensus;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.DenseTensor;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The decomposed LayerNorm fused into LayerNormalization, checked with ORT on random inputs. */
class LayerNormFusionTest {

  /** x [2, 3, 8] -> decomposed LayerNorm over {@code axis} -> Relu (a user of y). */
  private static Model decomposed(long axis, long opset) {
    GraphBuilder b = GraphBuilder.create("g");
    Random r = new Random(3);
    float[] g = new float[8];
    float[] be = new float[8];
    for (int i = 0; i < 8; i++) {
      g[i] = 1 + (float) r.nextGaussian() * 0.3f;
      be[i] = (float) r.nextGaussian() * 0.3f;
    }
    Value x = b.input("x", FLOAT, 2, 3, 8);
    Value mean = b.op("ReduceMean", List.of(x), Attr.ints("axes", axis));
    Value d = b.op("Sub", x, mean);
    Value p = b.op("Pow", d, b.constantNode(DenseTensor.scalar(null, 2f)));
    Value v = b.op("ReduceMean", List.of(p), Attr.ints("axes", axis));
    Value s = b.op("Sqrt", b.op("Add", v, b.constantNode(DenseTensor.scalar(null, 1e-5f))));
    Value n = b.op("Div", d, s);
    Value y = b.op("Add", b.op("Mul", n, b.floats(new long[] {8}, g)), b.floats(new long[] {8}, be));
    Value out = b.op("Relu", y);
    out.setType(Type.tensor(FLOAT));
    b.output(out);
    return b.model(opset);
  }

  @Test
  void fusesTheDecomposedPatternAndKeepsTheOutputs() throws Exception {
    Model m = decomposed(-1, 17);
    byte[] before = ModelIO.toBytes(m);
    LayerNormFusion.Result r = LayerNormFusion.fuse(m);
    assertThat(r.fused()).hasSize(1);
    assertThat(r.refused()).isEmpty();
    assertThat(OpCensus.of(m.graph())).isEqualTo(Map.of("LayerNormalization", 1, "Relu", 1));
    Map<String, OnnxTensor> in = OrtRunner.randomInputs(before, 5);
    try {
      assertThat(OrtRunner.maxDiff(OrtRunner.run(before, in), OrtRunner.run(ModelIO.toBytes(m), in)))
          .isLessThanOrEqualTo(1e-5);
    } finally {
      OrtRunner.close(in);
    }
    assertThat(LayerNormFusion.fuse(m).fused()).as("idempotent").isEmpty();
  }

  @Test
  void lastAxisByPositiveIndexIsFusedToo() {
    Model m = decomposed(2, 17);
    assertThat(LayerNormFusion.fuse(m).fused()).hasSize(1);
  }

  @Test
  void aNormalisationOverAnotherAxisIsRefusedWithTheReason() {
    Model m = decomposed(1, 17);
    var census = OpCensus.of(m.graph());
    LayerNormFusion.Result r = LayerNormFusion.fuse(m);
    assertThat(r.fused()).isEmpty();
    assertThat(r.refused()).singleElement().asString().contains("reduces axis 1, not the last axis");
    assertThat(OpCensus.of(m.graph())).isEqualTo(census);
  }

  @Test
  void needsOpsetSeventeen() {
    assertThatThrownBy(() -> LayerNormFusion.fuse(decomposed(-1, 13)))
        .isInstanceOf(OpsetUpgradeException.class)
        .hasMessageContaining("opset 17")
        .hasMessageContaining("OpsetUpgrade");
  }
}
