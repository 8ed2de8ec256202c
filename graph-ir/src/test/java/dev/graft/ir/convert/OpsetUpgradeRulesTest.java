package dev.graft.ir.convert;

import static dev.graft.ir.DataType.FLOAT;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.onnxruntime.OnnxTensor;
import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Function;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.OpCensus;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.DenseTensor;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

/**
 * One small graph per rule and semantic case, run in ONNX Runtime before and after the upgrade on
 * the same random inputs. Where the old and new semantics differ, the test also shows that merely
 * restamping the opset would change the outputs, so the rewrite is what keeps them.
 */
class OpsetUpgradeRulesTest {

  // ---- helpers ------------------------------------------------------------------------------

  private static Model model(long opset, Consumer<GraphBuilder> body) {
    GraphBuilder b = GraphBuilder.create("g");
    body.accept(b);
    Model m = b.model(opset);
    m.setIrVersion(7L);
    return m;
  }

  /** Adds {@code v} as a graph output: float of unknown shape, which ORT fills in. */
  private static void out(GraphBuilder b, Value v) {
    v.setType(Type.tensor(FLOAT));
    b.output(v);
  }

  /** Upgrades {@code m} to {@code target} and asserts ORT gives the same outputs as before. */
  private static UpgradeReport assertUpgradeKeepsOutputs(Model m, long target) throws Exception {
    byte[] before = ModelIO.toBytes(m);
    UpgradeReport report = OpsetUpgrade.upgrade(m, target);
    byte[] after = ModelIO.toBytes(m);
    Map<String, OnnxTensor> in = OrtRunner.randomInputs(before, 42);
    try {
      var expected = OrtRunner.run(before, in);
      var actual = OrtRunner.run(after, in);
      assertThat(OrtRunner.maxDiff(expected, actual))
          .as("ORT outputs before (opset %s) and after (opset %s): %s vs %s",
              report.fromOpset(), target, expected, actual)
          .isLessThanOrEqualTo(1e-6);
    } finally {
      OrtRunner.close(in);
    }
    assertThat(m.defaultOpset().getAsLong()).isEqualTo(target);
    assertThat(m.irVersion()).isGreaterThanOrEqualTo(8);
    return report;
  }

  /** How far ORT's outputs move if only the opset number is changed (no rewrite). */
  private static double restampDiff(Model m, long target) throws Exception {
    byte[] before = ModelIO.toBytes(m);
    Model copy = ModelIO.fromBytes(before, Path.of("."));
    copy.setOpset("", target);
    Map<String, OnnxTensor> in = OrtRunner.randomInputs(before, 42);
    try {
      return OrtRunner.maxDiff(OrtRunner.run(before, in), OrtRunner.run(ModelIO.toBytes(copy), in));
    } finally {
      OrtRunner.close(in);
    }
  }

  private static Model softmaxModel(String op, Long axis, Object... dims) {
    return model(11, b -> {
      Value x = b.input("x", FLOAT, dims);
      Value y = axis == null ? b.op(op, List.of(x)) : b.op(op, List.of(x), Attr.of("axis", (long) axis));
      out(b, y);
    });
  }

  // ---- Softmax, LogSoftmax, Hardmax ---------------------------------------------------------

  @ParameterizedTest
  @ValueSource(strings = {"Softmax", "LogSoftmax", "Hardmax"})
  void axisOneOnThreeDimsKeepsTheOldTwoDimensionalMeaning(String op) throws Exception {
    assertThat(restampDiff(softmaxModel(op, 1L, 2, 3, 4), 13)).isGreaterThan(1e-3);
    Model m = softmaxModel(op, 1L, 2, 3, 4);
    UpgradeReport r = assertUpgradeKeepsOutputs(m, 17);
    assertThat(OpCensus.of(m.graph()))
        .containsEntry("Flatten", 1).containsEntry(op, 1).containsEntry("Shape", 1).containsEntry("Reshape", 1);
    assertThat(r.changes()).singleElement().satisfies(c -> assertThat(c.action()).contains("Flatten"));
  }

  @ParameterizedTest
  @ValueSource(strings = {"Softmax", "LogSoftmax", "Hardmax"})
  void lastAxisAgreesAndIsLeftAlone(String op) throws Exception {
    assertThat(restampDiff(softmaxModel(op, -1L, 2, 3, 4), 13)).isEqualTo(0);
    Model m = softmaxModel(op, -1L, 2, 3, 4);
    UpgradeReport r = assertUpgradeKeepsOutputs(m, 17);
    assertThat(OpCensus.of(m.graph())).containsOnlyKeys(op);
    assertThat(r.changes()).isEmpty();
  }

  @Test
  void axisEqualToRankMinusOneIsLeftAlone() throws Exception {
    Model m = softmaxModel("Softmax", 2L, 2, 3, 4);
    assertThat(assertUpgradeKeepsOutputs(m, 17).changes()).isEmpty();
    assertThat(OpCensus.of(m.graph())).containsOnlyKeys("Softmax");
  }

  @Test
  void defaultAxisOnTwoDimsIsWrittenOut() throws Exception {
    Model m = softmaxModel("Softmax", null, 3, 5);
    UpgradeReport r = assertUpgradeKeepsOutputs(m, 17);
    Node n = m.graph().nodes().get(0);
    assertThat(n.attrLong("axis", -99)).isEqualTo(1);
    assertThat(r.changes()).hasSize(1);
  }

  @Test
  void defaultAxisOnThreeDimsFlattens() throws Exception {
    assertThat(restampDiff(softmaxModel("Softmax", null, 2, 3, 4), 13)).isGreaterThan(1e-3);
    Model m = softmaxModel("Softmax", null, 2, 3, 4);
    assertUpgradeKeepsOutputs(m, 17);
    assertThat(OpCensus.of(m.graph())).containsKey("Flatten");
  }

  @Test
  void rankFromProducersDecidesThatTheAxisIsLast() throws Exception {
    Model m = model(11, b -> {
      Value x = b.input("x", FLOAT, 2, 3, 4);
      Value t = b.op("Relu", x); // no stored shape: the rank comes from Relu's input
      out(b, b.op("Softmax", List.of(t), Attr.of("axis", 2L)));
    });
    assertThat(assertUpgradeKeepsOutputs(m, 17).changes()).isEmpty();
    assertThat(OpCensus.of(m.graph())).doesNotContainKey("Flatten");
  }

  @Test
  void unknownRankTakesTheRewriteThatHoldsForEveryRank() throws Exception {
    Model unknown = model(11, b -> {
      Value x = b.input("x", FLOAT);
      out(b, b.op("Softmax", List.of(x), Attr.of("axis", 2L)));
    });
    unknown.graph().inputs().get(0).setType(Type.tensor(FLOAT));
    byte[] before = ModelIO.toBytes(unknown);
    OpsetUpgrade.upgrade(unknown, 17);
    assertThat(OpCensus.of(unknown.graph())).containsKey("Flatten");
    // ORT cannot make random inputs of unknown rank; feed a 3-D one by hand
    float[] data = new float[24];
    for (int i = 0; i < 24; i++) data[i] = (float) Math.sin(i);
    try (OnnxTensor x = OnnxTensor.createTensor(OrtRunner.ENV, java.nio.FloatBuffer.wrap(data), new long[] {2, 3, 4})) {
      var a = OrtRunner.run(before, Map.of("x", x));
      var b = OrtRunner.run(ModelIO.toBytes(unknown), Map.of("x", x));
      assertThat(OrtRunner.maxDiff(a, b)).isLessThanOrEqualTo(1e-6);
    }
  }

  @Test
  void softmaxToNewestOpset() throws Exception {
    assertUpgradeKeepsOutputs(softmaxModel("Softmax", 1L, 2, 3, 4), OpsetUpgrade.NEWEST_OPSET);
    assertUpgradeKeepsOutputs(softmaxModel("LogSoftmax", -1L, 2, 3, 4), OpsetUpgrade.NEWEST_OPSET);
  }

  // ---- axes attribute -> input ------------------------------------------------------------

  @ParameterizedTest
  @ValueSource(strings = {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd",
      "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"})
  void reduceAxesMoveToAnInput(String op) throws Exception {
    long changedAt = op.equals("ReduceSum") ? 13 : 18;
    for (long target : new long[] {17, 18, OpsetUpgrade.NEWEST_OPSET}) {
      for (long keepdims : new long[] {0, 1}) {
        Model m = model(11, b -> {
          Value x = b.input("x", FLOAT, 2, 3, 4);
          Value y = b.op(op, List.of(op.equals("ReduceLogSum") ? b.op("Abs", x) : x),
              Attr.ints("axes", 1, -1), Attr.of("keepdims", keepdims));
          out(b, y);
        });
        UpgradeReport r = assertUpgradeKeepsOutputs(m, target);
        Node n = m.graph().nodes().stream().filter(x -> x.is(op)).findFirst().orElseThrow();
        if (target >= changedAt) {
          assertThat(n.hasAttr("axes")).isFalse();
          assertThat(n.input(1).initializer().orElseThrow().toLongArray()).containsExactly(1, -1);
          assertThat(r.changes()).hasSize(1);
        } else {
          assertThat(n.hasAttr("axes")).isTrue();
          assertThat(r.changes()).isEmpty();
        }
      }
    }
  }

  @Test
  void reduceWithoutAxesStillReducesEverything() throws Exception {
    Model m = model(11, b -> out(b, b.op("ReduceMean", List.of(b.input("x", FLOAT, 2, 3)))));
    assertThat(assertUpgradeKeepsOutputs(m, 18).changes()).isEmpty();
    assertThat(m.graph().nodes().get(0).inputCount()).isEqualTo(1);
  }

  @Test
  void squeezeAndUnsqueezeAxesMoveToInputs() throws Exception {
    Model m = model(11, b -> {
      Value x = b.input("x", FLOAT, 2, 1, 3);
      Value s = b.op("Squeeze", List.of(x), Attr.ints("axes", 1));
      Value u = b.op("Unsqueeze", List.of(s), Attr.ints("axes", 0, 3));
      Value all = b.op("Squeeze", List.of(u));
      out(b, u);
      out(b, all);
    });
    UpgradeReport r = assertUpgradeKeepsOutputs(m, 17);
    assertThat(r.counts().count("Squeeze: axes attribute -> input (opset 13)")).isEqualTo(1);
    assertThat(r.counts().count("Unsqueeze: axes attribute -> input (opset 13)")).isEqualTo(1);
    assertThat(m.graph().nodes()).allSatisfy(n -> assertThat(n.hasAttr("axes")).isFalse());
  }

  // ---- Split ----------------------------------------------------------------------------------

  @Test
  void splitSizesMoveToAnInput() throws Exception {
    for (long target : new long[] {17, 18, OpsetUpgrade.NEWEST_OPSET}) {
      Model m = model(11, b -> {
        Value x = b.input("x", FLOAT, 2, 6);
        List<Value> parts = b.ops("Split", 2, List.of(x), Attr.of("axis", 1L), Attr.ints("split", 1, 5));
        out(b, parts.get(0));
        out(b, parts.get(1));
      });
      UpgradeReport r = assertUpgradeKeepsOutputs(m, target);
      Node n = m.graph().nodes().get(0);
      assertThat(n.input(1).initializer().orElseThrow().toLongArray()).containsExactly(1, 5);
      assertThat(n.hasAttr("num_outputs")).isFalse();
      assertThat(r.changes()).hasSize(1);
    }
  }

  @Test
  void equalSplitGetsNumOutputsAtEighteen() throws Exception {
    for (long target : new long[] {17, 18}) {
      Model m = model(11, b -> {
        Value x = b.input("x", FLOAT, 2, 6);
        List<Value> parts = b.ops("Split", 3, List.of(x), Attr.of("axis", 1L));
        for (Value p : parts) out(b, p);
      });
      assertUpgradeKeepsOutputs(m, target);
      assertThat(m.graph().nodes().get(0).attrLong("num_outputs", -1)).isEqualTo(target >= 18 ? 3 : -1);
    }
  }

  // ---- Pad, Resize, Clip, Dropout, BatchNormalization ------------------------------------------

  @Test
  void padWithInputsIsABump() throws Exception {
    Model m = model(11, b -> {
      Value x = b.input("x", FLOAT, 2, 3);
      Value y = b.op("Pad", List.of(x, b.int64s(0, 1, 1, 2), b.scalar(0.5f)), Attr.of("mode", "constant"));
      Value z = b.op("Pad", List.of(x, b.int64s(1, 1, 1, 1)), Attr.of("mode", "reflect"));
      out(b, y);
      out(b, z);
    });
    assertThat(assertUpgradeKeepsOutputs(m, OpsetUpgrade.NEWEST_OPSET).changes()).isEmpty();
  }

  @Test
  void resizeKeepsItsMeaningThroughNineteen() throws Exception {
    for (String mode : new String[] {"half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel"}) {
      for (long target : new long[] {17, 19, OpsetUpgrade.NEWEST_OPSET}) {
        Model m = model(11, b -> {
          Value x = b.input("x", FLOAT, 1, 1, 3, 4);
          Value roi = b.constant(DenseTensor.ofFloats(null, new long[] {0}));
          Value scales = b.constant(DenseTensor.ofFloats(null, new long[] {4}, 1, 1, 2, 1.5f));
          Value y = b.op("Resize", List.of(x, roi, scales), Attr.of("mode", "linear"),
              Attr.of("coordinate_transformation_mode", mode));
          Value z = b.op("Resize", List.of(x, roi, b.constant(DenseTensor.ofFloats(null, new long[] {0})),
              b.int64s(1, 1, 5, 7)), Attr.of("mode", "nearest"),
              Attr.of("coordinate_transformation_mode", mode));
          out(b, y);
          out(b, z);
        });
        assertUpgradeKeepsOutputs(m, target);
      }
    }
  }

  @Test
  void resizeWithTheRemovedCoordinateModeIsRefusedAtEighteen() throws Exception {
    Model m = model(11, b -> {
      Value x = b.input("x", FLOAT, 1, 1, 3, 4);
      Value y = b.op("Resize", List.of(x, b.constant(DenseTensor.ofFloats(null, new long[] {0})),
          b.constant(DenseTensor.ofFloats(null, new long[] {4}, 1, 1, 2, 2))), Attr.of("mode", "nearest"),
          Attr.of("coordinate_transformation_mode", "tf_half_pixel_for_nn"));
      out(b, y);
    });
    assertThatThrownBy(() -> OpsetUpgrade.upgrade(m, 18))
        .isInstanceOf(OpsetUpgradeException.class)
        .hasMessageContaining("op Resize")
        .hasMessageContaining("/Resize")
        .hasMessageContaining("opset 11 -> 18")
        .hasMessageContaining("tf_half_pixel_for_nn");
    assertThat(m.defaultOpset().getAsLong()).isEqualTo(11);
    assertUpgradeKeepsOutputs(m, 17);
  }

  @Test
  void clipWithInputsIsABump() throws Exception {
    Model m = model(11, b -> {
      Value x = b.input("x", FLOAT, 3, 4);
      out(b, b.op("Clip", x, b.scalar(-0.5f), b.scalar(0.7f)));
      out(b, b.op("Clip", java.util.Arrays.asList(x, null, b.scalar(0.1f))));
    });
    assertThat(assertUpgradeKeepsOutputs(m, 17).changes()).isEmpty();
  }

  @Test
  void dropoutRatioMovesToAnInput() throws Exception {
    Model m = model(11, b -> {
      Value x = b.input("x", FLOAT, 3, 4);
      out(b, b.op("Dropout", List.of(x), Attr.of("ratio", 0.3f)));
    });
    UpgradeReport r = assertUpgradeKeepsOutputs(m, 17);
    Node n = m.graph().nodes().get(0);
    assertThat(n.hasAttr("ratio")).isFalse();
    assertThat(n.input(1).initializer().orElseThrow().toFloatArray()).containsExactly(0.3f);
    assertThat(r.changes()).hasSize(1);
  }

  private static Model batchNorm(int outputs, boolean exposeMean) {
    return model(11, b -> {
      Value x = b.input("x", FLOAT, 2, 3, 4);
      float[] three = {0.5f, -1f, 2f};
      List<Value> outs = b.ops("BatchNormalization", outputs, List.of(x,
          b.floats(new long[] {3}, three), b.floats(new long[] {3}, 0.1f, 0.2f, 0.3f),
          b.floats(new long[] {3}, 1f, 0f, -1f), b.floats(new long[] {3}, 1f, 2f, 0.5f)),
          Attr.of("epsilon", 1e-3f));
      out(b, outs.get(0));
      if (exposeMean) out(b, outs.get(1));
    });
  }

  @Test
  void batchNormalizationInInferenceFormIsABump() throws Exception {
    Model single = batchNorm(1, false);
    assertThat(assertUpgradeKeepsOutputs(single, 17).changes()).isEmpty();
  }

  @Test
  void batchNormalizationInTrainingFormGetsTrainingMode() throws Exception {
    // five outputs meant training (batch statistics) before 14: dropping them alone would switch
    // the node to inference (running statistics) and change Y
    byte[] training = ModelIO.toBytes(batchNorm(5, false));
    byte[] inference = ModelIO.toBytes(batchNorm(1, false));
    Map<String, OnnxTensor> in = OrtRunner.randomInputs(training, 42);
    try {
      assertThat(OrtRunner.maxDiff(OrtRunner.run(training, in), OrtRunner.run(inference, in))).isGreaterThan(1e-3);
    } finally {
      OrtRunner.close(in);
    }
    for (boolean exposeMean : new boolean[] {false, true}) {
      Model five = batchNorm(5, exposeMean);
      String y = five.graph().outputs().get(0).name();
      UpgradeReport r = assertUpgradeKeepsOutputs(five, 17);
      Node n = five.graph().nodes().get(0);
      assertThat(n.outputs()).hasSize(3);
      assertThat(n.attrLong("training_mode", 0)).isEqualTo(1);
      assertThat(n.output().name()).isEqualTo(y);
      assertThat(r.changes()).singleElement().satisfies(c -> assertThat(c.action()).contains("training_mode=1"));
    }
  }

  @Test
  void batchNormalizationWhoseSavedStatisticsAreReadIsRefused() {
    Model m = model(11, b -> {
      Value x = b.input("x", FLOAT, 2, 3, 4);
      Value c = b.floats(new long[] {3}, 1f, 2f, 3f);
      List<Value> outs = b.ops("BatchNormalization", 5, List.of(x, c, c, c, c));
      out(b, outs.get(0));
      out(b, outs.get(3));
    });
    assertThatThrownBy(() -> OpsetUpgrade.upgrade(m, 17))
        .isInstanceOf(OpsetUpgradeException.class)
        .hasMessageContaining("op BatchNormalization")
        .hasMessageContaining("opset 11 -> 17")
        .hasMessageContaining("output 3");
  }

  // ---- gathers, scatters and plain bumps ----------------------------------------------------

  @Test
  void gatherAndScatterFamiliesAreBumps() throws Exception {
    Model m = model(11, b -> {
      Value x = b.input("x", FLOAT, 3, 4);
      Value idx = b.constant(DenseTensor.ofLongs(null, new long[] {2, 4}, 0, 2, 1, 0, 2, 2, 0, 1));
      out(b, b.op("Gather", List.of(x, b.int64s(2, 0)), Attr.of("axis", 0L)));
      out(b, b.op("GatherElements", List.of(x, idx), Attr.of("axis", 0L)));
      Value nd = b.constant(DenseTensor.ofLongs(null, new long[] {2, 2}, 0, 1, 2, 3));
      out(b, b.op("GatherND", x, nd));
      out(b, b.op("ScatterND", x, nd, b.floats(new long[] {2}, 7f, 8f)));
      Value upd = b.floats(new long[] {1, 4}, 1f, 2f, 3f, 4f);
      Value row = b.constant(DenseTensor.ofLongs(null, new long[] {1, 4}, 2, 0, 1, 2));
      out(b, b.op("ScatterElements", List.of(x, row, upd), Attr.of("axis", 0L)));
    });
    assertThat(assertUpgradeKeepsOutputs(m, OpsetUpgrade.NEWEST_OPSET).changes()).isEmpty();
  }

  @Test
  void deprecatedScatterBecomesScatterElements() throws Exception {
    Model m = model(10, b -> {
      Value x = b.input("x", FLOAT, 3, 4);
      Value row = b.constant(DenseTensor.ofLongs(null, new long[] {1, 4}, 2, 0, 1, 2));
      out(b, b.op("Scatter", List.of(x, row, b.floats(new long[] {1, 4}, 1f, 2f, 3f, 4f)),
          Attr.of("axis", 0L)));
    });
    // Scatter is deprecated at 11 and ORT runs it at opset 10 only; compare with that.
    byte[] before = ModelIO.toBytes(m);
    m.setOpset("", 11);
    UpgradeReport r = OpsetUpgrade.upgrade(m, 17);
    assertThat(OpCensus.of(m.graph())).containsOnlyKeys("ScatterElements");
    assertThat(r.changes()).singleElement().satisfies(c -> assertThat(c.opType()).isEqualTo("Scatter"));
    var in = OrtRunner.randomInputs(before, 1);
    try {
      assertThat(OrtRunner.maxDiff(OrtRunner.run(before, in), OrtRunner.run(ModelIO.toBytes(m), in))).isZero();
    } finally {
      OrtRunner.close(in);
    }
  }

  @Test
  void typeWideningOpsAreBumps() throws Exception {
    Model m = model(11, b -> {
      Value x = b.input("x", FLOAT, 3, 4);
      Value p = b.op("Pow", b.op("Abs", x), b.scalar(1.5f));
      Value e = b.op("Cast", List.of(b.op("Equal", b.op("Cast", List.of(x), Attr.of("to", 7L)),
          b.scalar(0L))), Attr.of("to", (long) DataType.FLOAT.code()));
      out(b, b.op("Add", p, e));
      out(b, b.op("Where", b.op("Greater", x, b.scalar(0f)), x, b.op("Erf", x)));
    });
    UpgradeReport r = assertUpgradeKeepsOutputs(m, OpsetUpgrade.NEWEST_OPSET);
    assertThat(r.changes()).isEmpty();
    assertThat(r.fromOpset()).isEqualTo(11);
  }

  @Test
  void roiAlignKeepsItsOldCoordinateMode() throws Exception {
    Model m = model(11, b -> {
      Value x = b.input("x", FLOAT, 1, 2, 6, 6);
      Value rois = b.floats(new long[] {2, 4}, 0.3f, 0.7f, 4.1f, 3.9f, 1f, 1.5f, 5f, 5.5f);
      Value idx = b.constant(DenseTensor.ofLongs(null, new long[] {2}, 0, 0));
      out(b, b.op("RoiAlign", List.of(x, rois, idx), Attr.of("output_height", 2L),
          Attr.of("output_width", 2L), Attr.of("sampling_ratio", 2L)));
    });
    assertThat(restampDiff(m, 16)).isGreaterThan(1e-4);
    assertThat(assertUpgradeKeepsOutputs(m, 17).changes()).hasSize(1);
  }

  @Test
  void roiAlignIsRefusedWhereOrtHasNoKernel() {
    Model m = model(11, b -> {
      Value x = b.input("x", FLOAT, 1, 2, 6, 6);
      Value rois = b.floats(new long[] {1, 4}, 0.3f, 0.7f, 4.1f, 3.9f);
      out(b, b.op("RoiAlign", x, rois, b.constant(DenseTensor.ofLongs(null, new long[] {1}, 0))));
    });
    assertThatThrownBy(() -> OpsetUpgrade.upgrade(m, 22))
        .isInstanceOf(OpsetUpgradeException.class)
        .hasMessageContaining("op RoiAlign")
        .hasMessageContaining("opset 11 -> 22")
        .hasMessageContaining("opset 21 or lower");
  }

  @Test
  void gridSampleModesAreRenamedAtTwenty() throws Exception {
    for (String mode : new String[] {null, "bilinear", "bicubic", "nearest"}) {
      for (long target : new long[] {17, 20, OpsetUpgrade.NEWEST_OPSET}) {
        Model m = model(16, b -> {
          Value x = b.input("x", FLOAT, 1, 2, 4, 5);
          Value grid = b.floats(new long[] {1, 2, 3, 2}, -0.9f, 0.2f, 0.35f, -0.4f, 0.7f, 0.75f,
              0.1f, -0.66f, -0.3f, 0.9f, 0.95f, 0.05f);
          Value y = mode == null ? b.op("GridSample", x, grid)
              : b.op("GridSample", List.of(x, grid), Attr.of("mode", mode));
          out(b, y);
        });
        UpgradeReport r = assertUpgradeKeepsOutputs(m, target);
        boolean renamed = target >= 20 && !"nearest".equals(mode);
        assertThat(r.changes()).hasSize(renamed ? 1 : 0);
      }
    }
  }

  @Test
  void dftAxisMovesToAnInputAtTwenty() throws Exception {
    for (Long axis : new Long[] {null, 1L, 2L}) {
      Model m = model(17, b -> {
        Value x = b.input("x", FLOAT, 2, 8, 6, 1);
        Value y = axis == null ? b.op("DFT", x)
            : b.op("DFT", List.of(x), Attr.of("axis", (long) axis), Attr.of("onesided", 0L));
        out(b, y);
      });
      if (axis == null || axis == 1L) {
        // DFT-20's default axis is -2: without the rewrite a default-axis node would change
        assertThat(restampDiff(model(17, b -> out(b, b.op("DFT", b.input("x", FLOAT, 2, 8, 6, 1)))), 20))
            .isGreaterThan(1e-3);
      }
      UpgradeReport r = assertUpgradeKeepsOutputs(m, OpsetUpgrade.NEWEST_OPSET);
      assertThat(r.changes()).hasSize(1);
      assertThat(m.graph().nodes().get(0).hasAttr("axis")).isFalse();
    }
  }

  // ---- subgraphs and functions --------------------------------------------------------------

  @Test
  void subgraphsAreUpgraded() throws Exception {
    Model m = model(11, b -> {
      Value x = b.input("x", FLOAT, 2, 3, 4);
      Value c = b.input("c", DataType.BOOL);
      Graph then = new Graph("then");
      Node t = then.addNode(new Node("", "Softmax", List.of(x), List.of("t"), List.of(Attr.of("axis", 1L)), "sm"));
      t.output().setType(Type.tensor(FLOAT));
      then.addOutput(t.output());
      Graph other = new Graph("else");
      Node e = other.addNode(new Node("", "ReduceSum", List.of(x), List.of("e"),
          List.of(Attr.ints("axes", 2), Attr.of("keepdims", 1L)), "rs"));
      Node p = other.addNode(new Node("", "Mul", List.of(e.output(), x), List.of("p"), List.of(), "mul"));
      p.output().setType(Type.tensor(FLOAT));
      other.addOutput(p.output());
      Value y = b.op("If", List.of(c), Attr.of("then_branch", then), Attr.of("else_branch", other));
      out(b, y);
    });
    m.graph().inputs().get(1).setType(Type.tensor(DataType.BOOL, new long[0]));
    for (boolean cond : new boolean[] {true, false}) {
      Model copy = ModelIO.fromBytes(ModelIO.toBytes(m), Path.of("."));
      byte[] before = ModelIO.toBytes(copy);
      UpgradeReport r = OpsetUpgrade.upgrade(copy, 17);
      assertThat(r.changes()).extracting(UpgradeReport.Change::opType).containsExactlyInAnyOrder("Softmax", "ReduceSum");
      assertThat(r.changes()).allSatisfy(ch -> assertThat(ch.scope()).contains("_branch"));
      float[] data = new float[24];
      for (int i = 0; i < 24; i++) data[i] = (float) Math.cos(i * 0.7);
      try (OnnxTensor xt = OnnxTensor.createTensor(OrtRunner.ENV, java.nio.FloatBuffer.wrap(data), new long[] {2, 3, 4});
          OnnxTensor ct = OnnxTensor.createTensor(OrtRunner.ENV, cond)) {
        var a = OrtRunner.run(before, Map.of("x", xt, "c", ct));
        var bb = OrtRunner.run(ModelIO.toBytes(copy), Map.of("x", xt, "c", ct));
        assertThat(OrtRunner.maxDiff(a, bb)).isLessThanOrEqualTo(1e-6);
      }
    }
  }

  @Test
  void functionBodiesAreUpgradedAtTheirOwnImport() throws Exception {
    Graph body = new Graph("body");
    Value fx = body.addInput("fx", Type.tensor(FLOAT));
    Node red = body.addNode(new Node("", "ReduceSum", List.of(fx), List.of("fs"),
        List.of(Attr.ints("axes", 1), Attr.of("keepdims", 0L)), "red"));
    Node sm = body.addNode(new Node("", "Softmax", List.of(red.output()), List.of("fy"),
        List.of(Attr.of("axis", 0L)), "sm"));
    body.addOutput(sm.output());
    Function f = new Function("local", "SumSoftmax", body);
    f.opsets().put("", 11L);
    Model m = model(11, b -> {
      Value x = b.input("x", FLOAT, 2, 3, 4);
      out(b, b.opIn("local", "SumSoftmax", List.of(x)));
    });
    m.functions().add(f);
    UpgradeReport r = assertUpgradeKeepsOutputs(m, 17);
    assertThat(f.opsets()).containsEntry("", 17L);
    assertThat(r.changes()).extracting(UpgradeReport.Change::opType).containsExactlyInAnyOrder("ReduceSum", "Softmax");
    // functions have no initializers: the new axes are a Constant node
    assertThat(OpCensus.of(body)).containsKey("Constant").containsKey("Flatten");
  }

  // ---- refusals -----------------------------------------------------------------------------

  @Test
  void unknownOpIsRefusedByNameNodeAndVersions() {
    Model m = model(11, b -> {
      Value x = b.input("x", FLOAT, 2, 3);
      out(b, b.op("Softmax", List.of(b.op("Relu", x)), Attr.of("axis", 0L)));
      Node mystery = b.node("", "MysteryOp", 1, List.of(x));
      out(b, mystery.output());
    });
    int nodes = m.graph().nodeCount();
    assertThatThrownBy(() -> OpsetUpgrade.upgrade(m, 17))
        .isInstanceOf(OpsetUpgradeException.class)
        .hasMessageContaining("op MysteryOp")
        .hasMessageContaining("node '/MysteryOp'")
        .hasMessageContaining("from opset 11 to 17");
    assertThat(m.graph().nodeCount()).as("nothing changed").isEqualTo(nodes);
    assertThat(m.defaultOpset().getAsLong()).isEqualTo(11);
  }

  @Test
  void upsampleIsRefused() {
    Model m = model(11, b -> {
      Value x = b.input("x", FLOAT, 1, 1, 2, 2);
      out(b, b.op("Upsample", x, b.floats(new long[] {4}, 1, 1, 2, 2)));
    });
    assertThatThrownBy(() -> OpsetUpgrade.upgrade(m, 17))
        .isInstanceOf(OpsetUpgradeException.class)
        .hasMessageContaining("op Upsample")
        .hasMessageContaining("Resize");
  }

  @Test
  void downgradesAndOutOfRangeTargetsAreRefused() {
    Model m = softmaxModel("Softmax", -1L, 2, 3);
    m.setOpset("", 18);
    assertThatThrownBy(() -> OpsetUpgrade.upgrade(m, 17))
        .isInstanceOf(OpsetUpgradeException.class)
        .hasMessageContaining("from opset 18 down to 17");
    assertThatThrownBy(() -> OpsetUpgrade.upgrade(m, OpsetUpgrade.NEWEST_OPSET + 1))
        .hasMessageContaining("out of range");
    Model old = softmaxModel("Softmax", -1L, 2, 3);
    old.setOpset("", 9);
    assertThatThrownBy(() -> OpsetUpgrade.upgrade(old, 17)).hasMessageContaining("from opset 9");
  }

  @Test
  void upgradingTwiceChangesNothingTheSecondTime() throws Exception {
    Model m = softmaxModel("Softmax", 1L, 2, 3, 4);
    OpsetUpgrade.upgrade(m, 17);
    var census = OpCensus.of(m.graph());
    UpgradeReport again = OpsetUpgrade.upgrade(m, 17);
    assertThat(again.changes()).isEmpty();
    assertThat(OpCensus.of(m.graph())).isEqualTo(census);
  }
}
