package dev.graft.ir.convert;

import com.google.common.collect.ImmutableMap;
import com.google.common.collect.ImmutableSet;
import java.util.Optional;

/**
 * The registry: one rule per default-domain op Graft can carry from opset 11 to {@link
 * OpsetUpgrade#NEWEST_OPSET}. An op that is not here is refused by name.
 *
 * <p>{@link #VERSION_BUMPS} lists the ops whose schema changes in that range only widen type
 * lists (bfloat16, int4, float8, ...) or add attributes and optional inputs whose defaults keep
 * the old meaning (Reshape allowzero=0, ArgMax select_last_index=0, ScatterND reduction=none,
 * AveragePool dilations=1, GRU layout=0, Shape start/end, Cast saturate, ...). They need no
 * rewrite: the new opset number is enough.
 */
public final class UpgradeRules {
  private UpgradeRules() {}

  public static final ImmutableSet<String> VERSION_BUMPS =
      ImmutableSet.of(
          // elementwise arithmetic and math
          "Abs", "Acos", "Acosh", "Add", "Asin", "Asinh", "Atan", "Atanh", "Ceil", "Cos", "Cosh",
          "Div", "Erf", "Exp", "Floor", "Log", "Max", "Mean", "Min", "Mod", "Mul", "Neg", "Pow",
          "Reciprocal", "Round", "Sign", "Sin", "Sinh", "Sqrt", "Sub", "Sum", "Tan", "Tanh",
          // comparison and logic
          "And", "BitShift", "Equal", "Greater", "GreaterOrEqual", "IsInf", "IsNaN", "Less",
          "LessOrEqual", "Not", "Or", "Where", "Xor",
          // activations
          "Celu", "Elu", "HardSigmoid", "HardSwish", "LeakyRelu", "PRelu", "Relu", "Selu",
          "Shrink", "Sigmoid", "Softplus", "Softsign", "ThresholdedRelu",
          // shape and data movement
          "Cast", "CastLike", "Compress", "Concat", "Constant", "ConstantOfShape", "DepthToSpace",
          "Expand", "EyeLike", "Flatten", "Gather", "GatherElements", "GatherND", "Identity",
          "NonZero", "OneHot", "Pad", "Range", "Reshape", "ReverseSequence", "ScatterElements",
          "ScatterND", "Shape", "Size", "Slice", "SpaceToDepth", "Tile", "Transpose", "Trilu",
          "Unique", "Clip", "CumSum", "TopK", "ArgMax", "ArgMin",
          // linear algebra, convolution, pooling, normalization
          "Conv", "ConvInteger", "ConvTranspose", "Det", "Einsum", "Gemm", "MatMul",
          "MatMulInteger", "QLinearConv", "QLinearMatMul", "QuantizeLinear", "DequantizeLinear",
          "AveragePool", "GlobalAveragePool", "GlobalLpPool", "GlobalMaxPool", "LpPool",
          "MaxPool", "MaxRoiPool", "MaxUnpool", "InstanceNormalization", "LRN",
          "LpNormalization", "MeanVarianceNormalization", "LayerNormalization",
          "NonMaxSuppression",
          // recurrent and control flow (subgraphs are upgraded separately)
          "GRU", "LSTM", "RNN", "If", "Loop", "Scan",
          // sequences
          "ConcatFromSequence", "SequenceAt", "SequenceConstruct", "SequenceEmpty",
          "SequenceErase", "SequenceInsert", "SequenceLength", "SplitToSequence",
          // random and losses
          "Bernoulli", "Multinomial", "RandomNormal", "RandomNormalLike", "RandomUniform",
          "RandomUniformLike", "NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss",
          // optionals (18 widened OptionalHasElement/GetElement to plain tensors) and quantization
          "Optional", "OptionalGetElement", "OptionalHasElement", "DynamicQuantizeLinear",
          // signal processing and SequenceMap, new at 17
          "BlackmanWindow", "HammingWindow", "HannWindow", "MelWeightMatrix", "STFT",
          "SequenceMap");

  private static final ImmutableMap<String, UpgradeRule> RULES = build();

  private static ImmutableMap<String, UpgradeRule> build() {
    ImmutableMap.Builder<String, UpgradeRule> b = ImmutableMap.builder();
    for (String op : VERSION_BUMPS) b.put(op, UpgradeRule.BUMP);
    SoftmaxRule softmax = new SoftmaxRule();
    b.put("Softmax", softmax).put("LogSoftmax", softmax).put("Hardmax", softmax);
    AxesToInputRule at13 = new AxesToInputRule(13);
    b.put("ReduceSum", at13).put("Squeeze", at13).put("Unsqueeze", at13);
    AxesToInputRule at18 = new AxesToInputRule(18);
    for (String op :
        new String[] {
          "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
          "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"
        }) {
      b.put(op, at18);
    }
    b.put("Split", new SplitRule());
    b.put("Dropout", new DropoutRule());
    b.put("BatchNormalization", new BatchNormalizationRule());
    b.put("Resize", new ResizeRule());
    b.put("Scatter", new ScatterRule());
    b.put("RoiAlign", new RoiAlignRule());
    b.put("GridSample", new GridSampleRule());
    b.put("DFT", new DftRule());
    b.put(
        "Upsample",
        new RefuseRule(
            "Upsample is deprecated since opset 10 and has no schema at opset 11 or later."
                + " Re-export the model with Resize."));
    return b.build();
  }

  /** The rule for a default-domain op, or empty when Graft does not know how to upgrade it. */
  public static Optional<UpgradeRule> forOp(String opType) {
    return Optional.ofNullable(RULES.get(opType));
  }

  /** Every op with a rule, bumps included. */
  public static ImmutableSet<String> knownOps() {
    return RULES.keySet();
  }
}
