package dev.graft.trainer.autodiff;

import static org.assertj.core.api.Assertions.assertThat;

import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Dim;
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
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every gradient rule against central finite differences computed with ONNX Runtime, from one
 * table of cases. Each case is a one-node graph; the loss is {@code sum_i ReduceSum(y_i * R_i)}
 * with fixed random R_i, the analytic gradients come from running the emitted backward graph in
 * ORT, and the oracle is ORT's forward pass at perturbed inputs: per coordinate (all, or a sample
 * for big inputs) and along one random direction (the dot-product check).
 *
 * <p>Each case runs twice: with static shapes on every value, and with symbolic sizes only
 * (ranks known, no size), which drives the rules onto their run-time-shape paths.
 */
class GradientCheckTest {
  private static final OrtEnvironment ENV = OrtEnvironment.getEnvironment();
  private static final DataType D = DataType.DOUBLE;
  private static final DataType F = DataType.FLOAT;
  /** Op names with this prefix are com.microsoft contrib ops (which the trainer's fusions emit). */
  private static final String CONTRIB = "com.microsoft.";
  /** Optional outputs that ORT's CPU kernel of an op does not write: the case leaves them out. */
  private static final Map<String, java.util.Set<Integer>> UNWRITTEN =
      Map.of(CONTRIB + "SkipLayerNormalization", java.util.Set.of(1, 2));

  enum Kind {
    ANY, // uniform in (-1, 1)
    POSITIVE, // uniform in (0.5, 1.5)
    AWAY, // magnitude in (0.2, 1), random sign: away from kinks at 0
    CONST_FLOAT, // a frozen initializer
    INTS,
    BOOLS
  }

  record In(String name, long[] shape, Kind kind, double[] values) {
    boolean diff() {
      return kind == Kind.ANY || kind == Kind.POSITIVE || kind == Kind.AWAY;
    }
  }

  static In x(String name, long... shape) {
    return new In(name, shape, Kind.ANY, null);
  }

  static In pos(String name, long... shape) {
    return new In(name, shape, Kind.POSITIVE, null);
  }

  static In away(String name, long... shape) {
    return new In(name, shape, Kind.AWAY, null);
  }

  static In cf(String name, long[] shape, double... v) {
    return new In(name, shape, Kind.CONST_FLOAT, v);
  }

  static In ints(String name, long[] shape, double... v) {
    return new In(name, shape, Kind.INTS, v);
  }

  static In bools(String name, long[] shape, double... v) {
    return new In(name, shape, Kind.BOOLS, v);
  }

  /** An omitted optional input. */
  static final In NONE = new In("", new long[0], Kind.INTS, null);

  static long[] s(long... d) {
    return d;
  }

  record Case(
      String label,
      String op,
      List<In> inputs,
      List<Attr> attrs,
      int outputs,
      boolean[] inLoss,
      DataType dtype,
      double tol,
      long opset,
      boolean symbolic) {
    @Override
    public String toString() {
      return label;
    }

    Case loss(boolean... used) {
      return new Case(label, op, inputs, attrs, outputs, used, dtype, tol, opset, symbolic);
    }

    Case withOutputs(int n) {
      return new Case(label, op, inputs, attrs, n, inLoss, dtype, tol, opset, symbolic);
    }

    Case atOpset(long v) {
      return new Case(label, op, inputs, attrs, outputs, inLoss, dtype, tol, v, symbolic);
    }

    Case f32() {
      return new Case(label + " f32", op, inputs, attrs, outputs, inLoss, F, 2e-2, opset, symbolic);
    }

    /** For cases whose output is float32 though the inputs are float64. */
    Case loose() {
      return new Case(label, op, inputs, attrs, outputs, inLoss, dtype, 2e-2, opset, symbolic);
    }

    Case staticOnly() {
      return new Case(label, op, inputs, attrs, outputs, inLoss, dtype, tol, opset, false);
    }

    Case asSymbolic() {
      return new Case(label + " [symbolic]", op, inputs, attrs, outputs, inLoss, dtype, tol, opset, true);
    }
  }

  static Case c(String label, String op, List<In> inputs, Attr... attrs) {
    return new Case(label, op, inputs, List.of(attrs), 1, null, D, 1e-6, 17, false);
  }

  /** The table. */
  static List<Case> table() {
    List<Case> t = new ArrayList<>();
    // Broadcasting arithmetic.
    t.add(c("Add", "Add", List.of(x("a", 2, 3), x("b", 2, 3))));
    t.add(c("Add broadcast", "Add", List.of(x("a", 2, 1, 4), x("b", 3, 1))));
    t.add(c("Sub broadcast", "Sub", List.of(x("a", 2, 3), x("b", 1, 3))));
    t.add(c("Mul", "Mul", List.of(x("a", 2, 3), x("b", 2, 3))));
    t.add(c("Mul broadcast", "Mul", List.of(x("a", 4, 1), x("b", 3))));
    t.add(c("Mul same input twice", "Mul", List.of(x("a", 2, 3), x("a", 2, 3))));
    t.add(c("Div broadcast", "Div", List.of(x("a", 2, 3), away("b", 3))));
    t.add(c("Neg", "Neg", List.of(x("a", 2, 3))));
    t.add(c("Pow const exponent", "Pow", List.of(pos("x", 2, 3), cf("e", s(), 2.5))));
    t.add(c("Pow broadcast exponent", "Pow", List.of(pos("x", 2, 3), cf("e", s(3), 2, 0.5, -1))));
    // Elementwise functions.
    t.add(c("Sqrt", "Sqrt", List.of(pos("x", 2, 3))));
    t.add(c("Exp", "Exp", List.of(x("x", 2, 3))));
    t.add(c("Log", "Log", List.of(pos("x", 2, 3))));
    t.add(c("Tanh", "Tanh", List.of(x("x", 2, 3))));
    t.add(c("Sigmoid", "Sigmoid", List.of(x("x", 2, 3))));
    t.add(c("Relu", "Relu", List.of(away("x", 3, 4))));
    t.add(c("HardSigmoid", "HardSigmoid", List.of(x("x", 3, 4)), Attr.of("alpha", 0.3f), Attr.of("beta", 0.4f)).f32());
    t.add(c("HardSwish", "HardSwish", List.of(x("x", 3, 4))).f32());
    t.add(c("Erf", "Erf", List.of(x("x", 2, 3))).f32());
    t.add(c("Gelu exact", "Gelu", List.of(x("x", 2, 3))).atOpset(20).f32());
    // com.microsoft Gelu, which GeluFusion makes of the exporters' Erf pattern (float32 kernel).
    t.add(c("contrib Gelu", CONTRIB + "Gelu", List.of(x("x", 2, 3))).f32());
    t.add(c("contrib Gelu away from 0", CONTRIB + "Gelu", List.of(away("x", 3, 4))).f32());
    t.add(c("Gelu tanh", "Gelu", List.of(x("x", 2, 3)), Attr.of("approximate", "tanh")).atOpset(20).f32());
    // Selection.
    t.add(
        c("Where broadcast", "Where",
            List.of(bools("c", s(2, 3), 1, 0, 1, 0, 0, 1), x("a", 2, 3), x("b", 3))));
    t.add(c("Clip", "Clip", List.of(x("x", 3, 4), cf("lo", s(), -0.5), cf("hi", s(), 0.5))));
    t.add(c("Clip min only", "Clip", List.of(x("x", 3, 4), cf("lo", s(), -0.5))));
    t.add(c("Max broadcast", "Max", List.of(x("a", 2, 3), x("b", 3), x("c", 2, 1))));
    t.add(c("Min", "Min", List.of(x("a", 2, 3), x("b", 2, 3))));
    // Linear algebra.
    t.add(c("MatMul 2-D", "MatMul", List.of(x("a", 2, 3), x("b", 3, 4))));
    t.add(c("MatMul batched", "MatMul", List.of(x("a", 2, 2, 3), x("b", 2, 3, 4))));
    t.add(c("MatMul broadcast", "MatMul", List.of(x("a", 2, 1, 2, 3), x("b", 3, 3, 4))));
    t.add(c("MatMul weight", "MatMul", List.of(x("a", 2, 3, 4), x("w", 4, 5))));
    t.add(c("MatMul vector left", "MatMul", List.of(x("a", 3), x("b", 2, 3, 4))));
    t.add(c("MatMul vector right", "MatMul", List.of(x("a", 2, 3, 4), x("b", 4))));
    t.add(c("MatMul dot", "MatMul", List.of(x("a", 3), x("b", 3))));
    t.add(c("Gemm", "Gemm", List.of(x("a", 2, 3), x("b", 3, 4), x("c", 4))));
    t.add(
        c("Gemm transposed scaled", "Gemm", List.of(x("a", 3, 2), x("b", 4, 3), x("c", 2, 1)),
            Attr.of("transA", 1L), Attr.of("transB", 1L), Attr.of("alpha", 0.7f),
            Attr.of("beta", 1.5f)));
    t.add(c("Gemm no C", "Gemm", List.of(x("a", 2, 3), x("b", 4, 3)), Attr.of("transB", 1L)));
    t.add(
        c("Conv groups strides pads", "Conv", List.of(x("x", 2, 4, 5, 5), x("w", 6, 2, 3, 3), x("b", 6)),
                Attr.of("group", 2L), Attr.ints("strides", 2, 2), Attr.ints("pads", 1, 1, 1, 1))
            .f32().staticOnly());
    t.add(
        c("Conv dilation uneven stride", "Conv", List.of(x("x", 1, 2, 7, 6), x("w", 3, 2, 2, 3)),
                Attr.ints("dilations", 2, 1), Attr.ints("strides", 2, 2), Attr.ints("pads", 0, 1, 1, 0))
            .f32().staticOnly());
    t.add(
        c("Conv same_upper", "Conv", List.of(x("x", 1, 3, 5, 4), x("w", 2, 3, 3, 3)),
                Attr.of("auto_pad", "SAME_UPPER"))
            .f32().staticOnly());
    // Layout.
    t.add(c("Transpose", "Transpose", List.of(x("x", 2, 3, 4)), Attr.ints("perm", 1, 2, 0)));
    t.add(c("Transpose default", "Transpose", List.of(x("x", 2, 3))));
    t.add(c("Reshape", "Reshape", List.of(x("x", 2, 3, 2), ints("s", s(2), 3, -1))));
    t.add(c("Flatten", "Flatten", List.of(x("x", 2, 3, 4)), Attr.of("axis", 2L)));
    t.add(c("Squeeze", "Squeeze", List.of(x("x", 2, 1, 3), ints("a", s(1), 1))));
    t.add(c("Unsqueeze", "Unsqueeze", List.of(x("x", 2, 3), ints("a", s(2), 0, -1))));
    t.add(c("Expand", "Expand", List.of(x("x", 3, 1), ints("s", s(3), 2, 3, 4))));
    t.add(c("Identity", "Identity", List.of(x("x", 2, 3))));
    t.add(c("Cast double to float", "Cast", List.of(x("x", 2, 3)), Attr.of("to", (long) F.code())).loose());
    t.add(c("Cast float to double", "Cast", List.of(x("x", 2, 3)), Attr.of("to", (long) D.code())).f32());
    t.add(c("Dropout inference", "Dropout", List.of(x("x", 2, 3), cf("r", s(), 0.3))));
    t.add(
        c("Dropout training_mode false", "Dropout",
                List.of(x("x", 2, 3), cf("r", s(), 0.3), bools("t", s(), 0)))
            .withOutputs(2).loss(true, false));
    t.add(c("Concat", "Concat", List.of(x("a", 2, 3), cf("k", s(2, 2), 1, 2, 3, 4), x("b", 2, 1)), Attr.of("axis", -1L)));
    t.add(c("Split", "Split", List.of(x("x", 2, 6), ints("s", s(2), 2, 4)), Attr.of("axis", 1L)).withOutputs(2));
    t.add(
        c("Split one piece used", "Split", List.of(x("x", 3, 2)), Attr.of("axis", 0L))
            .withOutputs(3).loss(false, true, false));
    t.add(c("Slice", "Slice", List.of(x("x", 3, 5), ints("st", s(2), 0, 1), ints("en", s(2), 2, -1), ints("ax", s(2), 0, 1))));
    t.add(
        c("Slice strided negative", "Slice",
            List.of(x("x", 4, 6), ints("st", s(2), -1, 1), ints("en", s(2), -100, 100), ints("ax", s(2), 0, 1), ints("sp", s(2), -2, 2))));
    t.add(c("Gather embedding", "Gather", List.of(x("e", 5, 3), ints("i", s(2, 3), 0, 4, 1, 4, -1, 2))));
    t.add(c("Gather axis 1", "Gather", List.of(x("d", 2, 4, 3), ints("i", s(3), 3, 0, 3)), Attr.of("axis", 1L)));
    t.add(c("Gather scalar index", "Gather", List.of(x("d", 4, 3), ints("i", s(), 2))));
    // Selection by index (the conditional-computation ops: TopK, GatherElements, scatters).
    t.add(c("TopK values", "TopK", List.of(x("x", 3, 5), ints("k", s(1), 2))).withOutputs(2).loss(true, false));
    t.add(
        c("TopK smallest axis 0", "TopK", List.of(x("x", 4, 3), ints("k", s(1), 2)), Attr.of("axis", 0L), Attr.of("largest", 0L))
            .withOutputs(2).loss(true, false));
    t.add(c("GatherElements axis 1 repeats negative", "GatherElements", List.of(x("d", 3, 4), ints("i", s(3, 2), 0, 3, -1, 1, 2, 2)), Attr.of("axis", 1L)));
    t.add(c("GatherElements axis 0", "GatherElements", List.of(x("d", 3, 2), ints("i", s(4, 2), 2, 0, 1, 1, 0, 2, 2, 2))));
    t.add(
        c("ScatterElements axis 1", "ScatterElements",
            List.of(x("d", 3, 4), ints("i", s(3, 2), 1, 3, 0, 2, 3, 1), x("u", 3, 2)), Attr.of("axis", 1L)));
    t.add(
        c("ScatterElements add repeats", "ScatterElements",
            List.of(x("d", 3, 2), ints("i", s(2, 2), 1, 1, 1, 0), x("u", 2, 2)), Attr.of("reduction", "add")));
    t.add(c("ScatterND rows", "ScatterND", List.of(x("d", 4, 3), ints("i", s(2, 1), 2, 0), x("u", 2, 3))));
    t.add(
        c("ScatterND add repeats", "ScatterND",
            List.of(x("d", 4, 3), ints("i", s(3, 1), 1, 1, 3), x("u", 3, 3)), Attr.of("reduction", "add")));
    // Reductions.
    t.add(c("ReduceSum axes input", "ReduceSum", List.of(x("x", 2, 3, 4), ints("a", s(1), -1)), Attr.of("keepdims", 0L)));
    t.add(c("ReduceSum all", "ReduceSum", List.of(x("x", 2, 3))));
    t.add(c("ReduceMean attr axes", "ReduceMean", List.of(x("x", 2, 3, 4)), Attr.ints("axes", 0, 2), Attr.of("keepdims", 0L)));
    t.add(c("ReduceMean input axes", "ReduceMean", List.of(x("x", 2, 3, 4), ints("a", s(1), 1))).atOpset(18));
    t.add(c("ReduceMean all", "ReduceMean", List.of(x("x", 2, 3)), Attr.of("keepdims", 0L)));
    t.add(c("ReduceLogSumExp axes input", "ReduceLogSumExp", List.of(x("x", 2, 3, 4), ints("a", s(1), -1)), Attr.of("keepdims", 0L)).atOpset(18));
    t.add(c("ReduceLogSumExp attr axes", "ReduceLogSumExp", List.of(x("x", 2, 3, 4)), Attr.ints("axes", 0, 2)));
    t.add(c("ReduceLogSumExp all", "ReduceLogSumExp", List.of(x("x", 2, 3)), Attr.of("keepdims", 0L)));
    t.add(c("GlobalAveragePool", "GlobalAveragePool", List.of(x("x", 2, 3, 4, 5))).f32());
    // Softmax family and losses.
    t.add(c("Softmax", "Softmax", List.of(x("x", 2, 3, 4)), Attr.of("axis", 1L)));
    t.add(c("LogSoftmax", "LogSoftmax", List.of(x("x", 2, 5))));
    t.add(c("SCE mean", "SoftmaxCrossEntropyLoss", List.of(x("s", 3, 4), ints("t", s(3), 1, 0, 3))));
    t.add(
        c("SCE weights ignore sum", "SoftmaxCrossEntropyLoss",
            List.of(x("s", 4, 3), ints("t", s(4), 2, -1, 0, 2), cf("w", s(3), 0.5, 2, 1.5)),
            Attr.of("reduction", "sum"), Attr.of("ignore_index", -1L)));
    t.add(
        c("SCE weights mean", "SoftmaxCrossEntropyLoss",
            List.of(x("s", 3, 3), ints("t", s(3), 2, 1, 1), cf("w", s(3), 0.5, 2, 1.5))));
    t.add(
        c("SCE spatial none log_prob", "SoftmaxCrossEntropyLoss",
                List.of(x("s", 2, 4, 3), ints("t", s(2, 3), 0, 3, 1, 2, 2, 0)),
                Attr.of("reduction", "none"))
            .withOutputs(2));
    t.add(
        c("SCE ignore mean", "SoftmaxCrossEntropyLoss",
            List.of(x("s", 3, 4), ints("t", s(3), 1, 7, 3)), Attr.of("ignore_index", 7L)));
    // Normalization.
    t.add(c("LayerNorm", "LayerNormalization", List.of(x("x", 2, 3, 4), x("g", 4), x("b", 4))));
    t.add(c("LayerNorm axis 1 no bias", "LayerNormalization", List.of(x("x", 2, 3, 4), x("g", 3, 4)), Attr.of("axis", 1L)));
    // float32: the driver gives the node its Mean and InvStdDev outputs and the rule reads them.
    t.add(c("LayerNorm", "LayerNormalization", List.of(x("x", 2, 3, 4), x("g", 4), x("b", 4))).f32());
    t.add(
        c("LayerNorm axis 1 saved statistics", "LayerNormalization", List.of(x("x", 2, 3, 4), x("g", 3, 4)),
                Attr.of("axis", 1L))
            .withOutputs(3)
            .loss(true, false, false));
    // com.microsoft SkipLayerNormalization, which SkipLayerNormFusion makes of Add (+ bias Add) +
    // LayerNorm: with the sum output (which the rule reads, and which carries a gradient here too)
    // and without it (the rule recomputes the sum).
    t.add(
        c("SkipLayerNorm with bias and sum", CONTRIB + "SkipLayerNormalization",
                List.of(x("x", 2, 3, 4), x("r", 2, 3, 4), x("g", 4), x("b", 4), x("bias", 4)), Attr.of("epsilon", 1e-5f))
            .withOutputs(4)
            .f32());
    t.add(
        c("SkipLayerNorm", CONTRIB + "SkipLayerNormalization",
                List.of(x("x", 2, 3, 4), x("r", 2, 3, 4), x("g", 4), x("b", 4)), Attr.of("epsilon", 1e-5f))
            .f32());
    t.add(
        c("SkipLayerNorm no beta, bias, skip without batch", CONTRIB + "SkipLayerNormalization",
                List.of(x("x", 2, 3, 4), x("r", 3, 4), x("g", 4), NONE, x("bias", 4)), Attr.of("epsilon", 1e-5f))
            .withOutputs(4)
            .loss(true, false, false, false)
            .f32());
    t.add(
        c("BatchNorm inference", "BatchNormalization",
            List.of(x("x", 2, 3, 2, 2), x("g", 3), x("b", 3), x("m", 3), pos("v", 3)),
            Attr.of("epsilon", 1e-3f)));
    // Decoder ops: causal masks, rotary tables, RMSNorm's reciprocal.
    t.add(c("Trilu lower offset", "Trilu", List.of(x("x", 2, 3, 4), ints("k", s(), 1)), Attr.of("upper", 0L)));
    t.add(c("Trilu upper", "Trilu", List.of(x("x", 4, 3))));
    t.add(c("Sin", "Sin", List.of(x("x", 2, 3))));
    t.add(c("Cos", "Cos", List.of(x("x", 2, 3))));
    t.add(c("Reciprocal", "Reciprocal", List.of(away("x", 2, 3))));
    List<Case> all = new ArrayList<>();
    for (Case k : t) {
      all.add(k);
      if (!k.label().contains("Conv")) all.add(k.asSymbolic());
    }
    return all;
  }

  static Stream<Arguments> cases() {
    return table().stream().map(Arguments::of);
  }

  // ---- the check ---------------------------------------------------------------------------------

  @ParameterizedTest(name = "{0}")
  @MethodSource("cases")
  void gradientsAgreeWithFiniteDifferences(Case k) throws OrtException {
    Random rnd = new Random(k.label().replace(" [symbolic]", "").hashCode());
    Map<String, double[]> feeds = new LinkedHashMap<>();
    Map<String, long[]> shapes = new HashMap<>();
    for (In in : k.inputs()) {
      if (in.diff() && !feeds.containsKey(in.name())) {
        feeds.put(in.name(), random(rnd, in));
        shapes.put(in.name(), in.shape());
      }
    }
    // 1. The node alone, to learn its output shapes and types (what shape inference would say).
    Graph probe = build(k, null, false);
    List<String> written = outputNames(k).stream().filter(o -> !o.isEmpty()).toList();
    List<OnnxTensor> probeOuts = run(k, probe, feeds, shapes, written);
    long[][] outShapes = new long[k.outputs()][];
    DataType[] outTypes = new DataType[k.outputs()];
    for (int i = 0; i < k.outputs(); i++) {
      int w = written.indexOf("y" + i);
      if (w < 0) continue;
      outShapes[i] = probeOuts.get(w).getInfo().getShape();
      OnnxJavaType jt = probeOuts.get(w).getInfo().type;
      outTypes[i] = jt == OnnxJavaType.DOUBLE ? D : jt == OnnxJavaType.BOOL ? DataType.BOOL : jt == OnnxJavaType.INT64 ? DataType.INT64 : F;
    }
    // 2. The loss graph, and its gradient graph.
    double[][] r = new double[k.outputs()][];
    for (int i = 0; i < k.outputs(); i++) {
      if (outShapes[i] == null) continue;
      r[i] = new double[(int) Arrays.stream(outShapes[i]).reduce(1, Math::multiplyExact)];
      for (int j = 0; j < r[i].length; j++) r[i][j] = rnd.nextGaussian();
    }
    Graph fwd = build(k, new Loss(outShapes, outTypes, r), k.symbolic());
    byte[] forwardBytes = ModelIO.toBytes(model(k, fwd));
    Graph bwd = build(k, new Loss(outShapes, outTypes, r), k.symbolic());
    List<Value> trainables = new ArrayList<>();
    for (String name : feeds.keySet()) trainables.add(bwd.valueOrThrow(name));
    int before = bwd.nodeCount();
    Map<Value, Value> grads = Backprop.gradients(model(k, bwd), bwd.valueOrThrow("loss"), trainables);
    for (Node n : bwd.nodes().subList(before, bwd.nodeCount())) {
      assertThat(n.domain()).as("domain of %s", n.name()).isEmpty();
      assertThat(n.name()).startsWith("grad/");
    }
    List<String> gradNames = new ArrayList<>();
    for (Value t : trainables) {
      Value g = grads.get(t);
      if (g.type() == null) g.setType(t.type());
      bwd.addOutput(g);
      gradNames.add(g.name());
    }
    Model bm = model(k, bwd);
    assertThat(Verifier.problems(bm)).isEmpty();

    double[][] analytic = new double[trainables.size()][];
    try (OrtSession s = ENV.createSession(ModelIO.toBytes(bm), new OrtSession.SessionOptions())) {
      List<OnnxTensor> outs = runSession(s, k, feeds, shapes, gradNames);
      for (int i = 0; i < trainables.size(); i++) analytic[i] = doubles(outs.get(i));
    }

    // 3. Central differences with ORT's forward pass.
    double eps = k.tol() < 1e-3 ? 1e-6 : 1e-2;
    try (OrtSession s = ENV.createSession(forwardBytes, new OrtSession.SessionOptions())) {
      int ti = 0;
      for (String name : feeds.keySet()) {
        double[] xv = feeds.get(name);
        int[] coords = sample(rnd, xv.length, 40);
        for (int c : coords) {
          double keep = xv[c];
          xv[c] = keep + eps;
          double up = loss(s, k, feeds, shapes);
          xv[c] = keep - eps;
          double down = loss(s, k, feeds, shapes);
          xv[c] = keep;
          double fd = (up - down) / (2 * eps);
          assertThat(Math.abs(fd - analytic[ti][c]))
              .as("%s: d loss / d %s[%s]: finite differences %s, backprop %s", k, name, c, fd, analytic[ti][c])
              .isLessThanOrEqualTo(k.tol() * (1 + Math.abs(fd)));
        }
        ti++;
      }
      // Dot-product check along one random direction through all inputs at once.
      Map<String, double[]> dir = new HashMap<>();
      double predicted = 0;
      int i = 0;
      for (String name : feeds.keySet()) {
        double[] v = new double[feeds.get(name).length];
        for (int j = 0; j < v.length; j++) {
          v[j] = rnd.nextGaussian();
          predicted += v[j] * analytic[i][j];
        }
        dir.put(name, v);
        i++;
      }
      Map<String, double[]> plus = shifted(feeds, dir, eps);
      Map<String, double[]> minus = shifted(feeds, dir, -eps);
      double fd = (loss(s, k, plus, shapes) - loss(s, k, minus, shapes)) / (2 * eps);
      assertThat(Math.abs(fd - predicted))
          .as("%s: directional derivative: finite differences %s, backprop %s", k, fd, predicted)
          .isLessThanOrEqualTo(k.tol() * 4 * (1 + Math.abs(fd)));
    }
  }

  // ---- graph making ------------------------------------------------------------------------------

  record Loss(long[][] shapes, DataType[] types, double[][] r) {}

  private static List<String> outputNames(Case k) {
    List<String> names = new ArrayList<>();
    java.util.Set<Integer> unwritten = UNWRITTEN.getOrDefault(k.op(), java.util.Set.of());
    for (int i = 0; i < k.outputs(); i++) names.add(unwritten.contains(i) ? "" : "y" + i);
    return names;
  }

  /** The case's node; with a loss, {@code loss = sum_i ReduceSum(y_i * R_i)}, else y_i out. */
  private static Graph build(Case k, Loss loss, boolean symbolic) {
    Graph g = new Graph("check");
    List<Value> ins = new ArrayList<>();
    for (In in : k.inputs()) {
      if (in == NONE) {
        ins.add(null);
        continue;
      }
      Value existing = g.value(in.name()).orElse(null);
      if (existing != null) {
        ins.add(existing);
        continue;
      }
      Value v;
      if (in.diff()) {
        v = g.addInput(in.name(), Type.tensor(k.dtype(), shape(in.name(), in.shape(), symbolic)));
      } else if (in.kind() == Kind.CONST_FLOAT) {
        v = g.addInitializer(in.name(), tensor(in.name(), k.dtype(), in.shape(), in.values()));
      } else if (in.kind() == Kind.INTS) {
        long[] l = Arrays.stream(in.values()).mapToLong(d -> (long) d).toArray();
        v = g.addInitializer(in.name(), DenseTensor.ofLongs(in.name(), in.shape(), l));
      } else {
        boolean[] bs = new boolean[in.values().length];
        for (int i = 0; i < bs.length; i++) bs[i] = in.values()[i] != 0;
        v = g.addInitializer(in.name(), DenseTensor.ofBools(in.name(), in.shape(), bs));
      }
      ins.add(v);
    }
    boolean contrib = k.op().startsWith(CONTRIB);
    String op = contrib ? k.op().substring(CONTRIB.length()) : k.op();
    Node n = new Node(contrib ? "com.microsoft" : "", op, ins, outputNames(k), k.attrs(), "the_" + op);
    g.addNode(n);
    if (loss == null) {
      for (Value o : n.outputs()) if (o != null) g.addOutput(o);
      return g;
    }
    Value total = null;
    for (int i = 0; i < k.outputs(); i++) {
      Value y = n.output(i);
      if (y == null) continue;
      y.setType(Type.tensor(loss.types()[i], shape("y" + i, loss.shapes()[i], symbolic)));
      if (k.inLoss() != null && !k.inLoss()[i]) continue;
      Value r = g.addInitializer("r" + i, tensor("r" + i, loss.types()[i], loss.shapes()[i], loss.r()[i]));
      Node m = g.addNode(new Node("", "Mul", List.of(y, r), List.of("m" + i), List.of(), "loss_mul" + i));
      Node s = g.addNode(new Node("", "ReduceSum", List.of(m.output()), List.of("s" + i), List.of(Attr.of("keepdims", 0L)), "loss_sum" + i));
      m.output().setType(y.type());
      s.output().setType(Type.tensor(loss.types()[i]));
      Value term = s.output();
      if (loss.types()[i] != k.dtype()) {
        Node c = g.addNode(new Node("", "Cast", List.of(term), List.of("c" + i), List.of(Attr.of("to", (long) k.dtype().code())), "loss_cast" + i));
        term = c.output();
        term.setType(Type.tensor(k.dtype(), Shape.scalar()));
      }
      total = total == null ? term : g.addNode(new Node("", "Add", List.of(total, term), List.of("t" + i), List.of(), "loss_add" + i)).output();
    }
    Node id = g.addNode(new Node("", "Identity", List.of(total), List.of("loss"), List.of(), "loss"));
    id.output().setType(Type.tensor(k.dtype(), Shape.scalar()));
    g.addOutput(id.output());
    return g;
  }

  /** A static shape, or one symbol per axis ("x_0", ...) so that no two sizes are known equal. */
  private static Shape shape(String name, long[] dims, boolean symbolic) {
    if (!symbolic) return Shape.of(dims);
    Dim[] d = new Dim[dims.length];
    for (int i = 0; i < dims.length; i++) d[i] = Dim.of(name + "_" + i);
    return Shape.of(d);
  }

  private static Model model(Case k, Graph g) {
    Model m = new Model(g);
    m.setIrVersion(9L);
    m.setOpset("", k.opset());
    if (k.op().startsWith(CONTRIB)) m.setOpset("com.microsoft", 1);
    return m;
  }

  private static DenseTensor tensor(String name, DataType t, long[] shape, double[] v) {
    if (t == D) return DenseTensor.ofDoubles(name, shape, v);
    float[] f = new float[v.length];
    for (int i = 0; i < v.length; i++) f[i] = (float) v[i];
    return DenseTensor.ofFloats(name, shape, f);
  }

  // ---- running -----------------------------------------------------------------------------------

  private static double[] random(Random rnd, In in) {
    int n = (int) Arrays.stream(in.shape()).reduce(1, Math::multiplyExact);
    double[] v = new double[n];
    for (int i = 0; i < n; i++) {
      v[i] =
          switch (in.kind()) {
            case POSITIVE -> 0.5 + rnd.nextDouble();
            case AWAY -> (rnd.nextBoolean() ? 1 : -1) * (0.2 + 0.8 * rnd.nextDouble());
            default -> 2 * rnd.nextDouble() - 1;
          };
    }
    return v;
  }

  private static int[] sample(Random rnd, int n, int max) {
    if (n <= max) return java.util.stream.IntStream.range(0, n).toArray();
    return rnd.ints(0, n).distinct().limit(max).toArray();
  }

  private static Map<String, double[]> shifted(Map<String, double[]> x, Map<String, double[]> d, double eps) {
    Map<String, double[]> out = new LinkedHashMap<>();
    for (var e : x.entrySet()) {
      double[] v = e.getValue().clone();
      double[] dv = d.get(e.getKey());
      for (int i = 0; i < v.length; i++) v[i] += eps * dv[i];
      out.put(e.getKey(), v);
    }
    return out;
  }

  private static List<OnnxTensor> run(Case k, Graph g, Map<String, double[]> feeds, Map<String, long[]> shapes, List<String> outs)
      throws OrtException {
    byte[] bytes = ModelIO.toBytes(model(k, g));
    OrtSession s = ENV.createSession(bytes, new OrtSession.SessionOptions());
    return runSession(s, k, feeds, shapes, outs);
  }

  private static List<OnnxTensor> runSession(
      OrtSession s, Case k, Map<String, double[]> feeds, Map<String, long[]> shapes, List<String> outs)
      throws OrtException {
    Map<String, OnnxTensor> in = new HashMap<>();
    for (var e : feeds.entrySet()) {
      long[] shape = shapes.get(e.getKey());
      double[] v = e.getValue();
      if (k.dtype() == D) {
        in.put(e.getKey(), OnnxTensor.createTensor(ENV, DoubleBuffer.wrap(v), shape));
      } else {
        float[] f = new float[v.length];
        for (int i = 0; i < v.length; i++) f[i] = (float) v[i];
        in.put(e.getKey(), OnnxTensor.createTensor(ENV, FloatBuffer.wrap(f), shape));
      }
    }
    OrtSession.Result r = s.run(in, new java.util.LinkedHashSet<>(outs));
    List<OnnxTensor> result = new ArrayList<>();
    for (String o : outs) result.add((OnnxTensor) r.get(o).orElseThrow());
    return result;
  }

  private static double loss(OrtSession s, Case k, Map<String, double[]> feeds, Map<String, long[]> shapes)
      throws OrtException {
    return doubles(runSession(s, k, feeds, shapes, List.of("loss")).get(0))[0];
  }

  private static double[] doubles(OnnxTensor t) {
    if (t.getInfo().type == OnnxJavaType.DOUBLE) {
      DoubleBuffer b = t.getDoubleBuffer();
      double[] d = new double[b.remaining()];
      b.get(d);
      return d;
    }
    FloatBuffer b = t.getFloatBuffer();
    double[] d = new double[b.remaining()];
    for (int i = 0; i < d.length; i++) d[i] = b.get(i);
    return d;
  }
}
