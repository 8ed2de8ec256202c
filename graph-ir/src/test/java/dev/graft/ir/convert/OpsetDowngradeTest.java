package dev.graft.ir.convert;

import static dev.graft.ir.DataType.FLOAT;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.onnxruntime.OnnxTensor;
import dev.graft.ir.Attr;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.OpCensus;
import dev.graft.ir.analysis.Verifier;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.DenseTensor;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Down-conversion, checked the way the upgrade is: ONNX Runtime runs the model before and after on
 * the same random inputs (the oracle), and every refusal names the op, the node and the opset.
 */
class OpsetDowngradeTest {

  private static Model model(long opset, Consumer<GraphBuilder> body) {
    GraphBuilder b = GraphBuilder.create("g");
    body.accept(b);
    Model m = b.model(opset);
    m.setIrVersion(8L);
    return m;
  }

  private static void out(GraphBuilder b, Value v) {
    v.setType(Type.tensor(FLOAT));
    b.output(v);
  }

  /** Converts {@code m} to {@code target}; ORT's outputs must not move by more than {@code tol}. */
  private static UpgradeReport assertDowngradeKeepsOutputs(Model m, long target, double tol) throws Exception {
    byte[] before = ModelIO.toBytes(m);
    UpgradeReport r = OpsetDowngrade.downgrade(m, target);
    Verifier.verify(m);
    byte[] after = ModelIO.toBytes(m);
    Map<String, OnnxTensor> in = OrtRunner.randomInputs(before, 7);
    try {
      assertThat(OrtRunner.maxDiff(OrtRunner.run(before, in), OrtRunner.run(after, in))).isLessThanOrEqualTo(tol);
    } finally {
      OrtRunner.close(in);
    }
    assertThat(m.defaultOpset().getAsLong()).isEqualTo(target);
    return r;
  }

  /** An opset-11 graph using every form that moved between 11 and 18. */
  private static Model movedForms() {
    return model(11, b -> {
      Value x = b.input("x", FLOAT, 2, 3, 4);
      Value u = b.op("Unsqueeze", List.of(x), Attr.ints("axes", 1));
      Value s = b.op("Squeeze", List.of(u), Attr.ints("axes", 1));
      Value sum = b.op("ReduceSum", List.of(s), Attr.ints("axes", -1), Attr.of("keepdims", 1L));
      Value mean = b.op("ReduceMean", List.of(s), Attr.ints("axes", 2), Attr.of("keepdims", 1L));
      Value soft = b.op("Softmax", List.of(b.op("Add", s, b.op("Add", sum, mean))), Attr.of("axis", -1L));
      List<Value> parts = b.ops("Split", 2, List.of(soft), Attr.of("axis", 2L), Attr.ints("split", 1, 3));
      out(b, b.op("Mul", parts.get(0), b.op("ReduceMax", List.of(parts.get(1)), Attr.ints("axes", 2), Attr.of("keepdims", 1L))));
    });
  }

  @ParameterizedTest
  @ValueSource(longs = {17, 13, 12, 11})
  void upgradedThenDowngradedComputesTheSame(long target) throws Exception {
    Model m = movedForms();
    OpsetUpgrade.upgrade(m, 18);
    assertThat(m.graph().nodes()).filteredOn(n -> n.is("Unsqueeze")).allMatch(n -> n.hasInput(1));

    UpgradeReport r = assertDowngradeKeepsOutputs(m, target, 1e-6);

    assertThat(r.fromOpset()).isEqualTo(18);
    for (Node n : m.graph().nodes()) {
      if (n.opType().startsWith("Reduce") && !n.is("ReduceSum")) {
        assertThat(n.hasInput(1)).as("%s axes back to the attribute", n.displayName()).isFalse();
        assertThat(n.attrLongs("axes")).isPresent();
      }
      if (target < 13 && (n.is("Unsqueeze") || n.is("Squeeze") || n.is("ReduceSum") || n.is("Split"))) {
        assertThat(n.hasInput(1)).as(n.displayName()).isFalse();
      }
    }
    assertThat(r.counts().toString()).contains("axes input -> attribute (opset < 18)");
    assertThat(m.graph().initializers()).as("axes constants left unused are removed").allMatch(Value::hasUses);
  }

  @Test
  void softmaxOverTheLastAxisGetsItsAxisWrittenOutBelowThirteen() throws Exception {
    Model m = model(13, b -> out(b, b.op("Softmax", List.of(b.input("x", FLOAT, 2, 3, 4)))));
    assertDowngradeKeepsOutputs(m, 11, 1e-6);
    assertThat(m.graph().nodes().get(0).attrLong("axis", 99)).isEqualTo(-1);
  }

  @Test
  void softmaxOverAnotherAxisIsRefused() {
    Model m = model(13, b -> out(b, b.op("Softmax", List.of(b.input("x", FLOAT, 2, 3, 4)), Attr.of("axis", 1L))));
    assertThatThrownBy(() -> OpsetDowngrade.downgrade(m, 12))
        .isInstanceOf(OpsetUpgradeException.class)
        .hasMessageContaining("op Softmax")
        .hasMessageContaining("axis 1");
    assertThat(m.defaultOpset().getAsLong()).isEqualTo(13);
  }

  @Test
  void layerNormalizationIsDecomposedBelowSeventeen() throws Exception {
    Model m = model(17, b -> {
      Value x = b.input("x", FLOAT, 2, 5, 8);
      float[] g = new float[8];
      float[] beta = new float[8];
      for (int i = 0; i < 8; i++) {
        g[i] = 0.5f + i / 8f;
        beta[i] = i / 10f - 0.3f;
      }
      Value y =
          b.op("LayerNormalization",
              List.of(x, b.floats(new long[] {8}, g), b.floats(new long[] {8}, beta)),
              Attr.of("epsilon", 1e-5f));
      out(b, y);
    });

    UpgradeReport r = assertDowngradeKeepsOutputs(m, 13, 1e-5);

    assertThat(OpCensus.of(m.graph())).doesNotContainKey("LayerNormalization")
        .containsEntry("ReduceMean", 2).containsEntry("Sqrt", 1).containsEntry("Div", 1);
    assertThat(r.changes()).singleElement().satisfies(c -> assertThat(c.action()).startsWith("decomposed"));
  }

  @Test
  void anOpWithNoOlderFormIsRefusedByNameAndTheModelIsUntouched() {
    Model m = model(14, b -> {
      Value x = b.input("x", FLOAT, 4, 4);
      out(b, b.op("Relu", b.op("Trilu", x)));
    });
    byte[] before = ModelIO.toBytes(m);

    assertThatThrownBy(() -> OpsetDowngrade.downgrade(m, 13))
        .isInstanceOf(OpsetUpgradeException.class)
        .hasMessageContaining("from opset 14 down to 13")
        .hasMessageContaining("op Trilu (node '")
        .hasMessageContaining("first appeared at opset 14");
    assertThat(ModelIO.toBytes(m)).isEqualTo(before);
  }

  @Test
  void runTimeAxesNewAttributeValuesAndUsedStatisticsAreRefused() {
    Model axes = model(18, b -> {
      Value x = b.input("x", FLOAT, 2, 3);
      Value a = b.input("a", dev.graft.ir.DataType.INT64, 1);
      out(b, b.op("ReduceMean", x, a));
    });
    assertThatThrownBy(() -> OpsetDowngrade.downgrade(axes, 17)).hasMessageContaining("computed at run time");

    Model reshape = model(14, b -> {
      Value x = b.input("x", FLOAT, 2, 3);
      out(b, b.op("Reshape", List.of(x, b.constant(DenseTensor.vector("s", 3, 2))), Attr.of("allowzero", 1L)));
    });
    assertThatThrownBy(() -> OpsetDowngrade.downgrade(reshape, 13))
        .hasMessageContaining("op Reshape").hasMessageContaining("allowzero=1");

    Model stats = model(17, b -> {
      Value x = b.input("x", FLOAT, 2, 4);
      List<Value> o = b.ops("LayerNormalization", 2, List.of(x, b.floats(new long[] {4}, 1, 1, 1, 1)));
      out(b, b.op("Add", o.get(0), o.get(1)));
    });
    assertThatThrownBy(() -> OpsetDowngrade.downgrade(stats, 16))
        .hasMessageContaining("op LayerNormalization").hasMessageContaining("output 1");
  }

  @Test
  void defaultsOfNewerAttributesAreDropped() throws Exception {
    Model m = model(14, b -> {
      Value x = b.input("x", FLOAT, 2, 3);
      out(b, b.op("Reshape", List.of(x, b.constant(DenseTensor.vector("s", 3, 2))), Attr.of("allowzero", 0L)));
    });
    assertDowngradeKeepsOutputs(m, 13, 0);
    assertThat(m.graph().nodes()).filteredOn(n -> n.is("Reshape")).allMatch(n -> !n.hasAttr("allowzero"));
  }

  @Test
  void targetsOutOfRangeAreRefused() {
    Model m = movedForms();
    assertThatThrownBy(() -> OpsetDowngrade.downgrade(m, 10)).hasMessageContaining("opset 11 or newer");
    assertThatThrownBy(() -> OpsetDowngrade.downgrade(m, 12)).hasMessageContaining("upgrade");
  }
}
