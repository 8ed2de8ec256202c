package dev.graft.trainer.autodiff;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableMap;
import com.google.common.collect.ImmutableSortedSet;
import dev.graft.ir.Node;
import dev.graft.trainer.autodiff.rules.ArithmeticRules;
import dev.graft.trainer.autodiff.rules.ConcatSplitSliceRules;
import dev.graft.trainer.autodiff.rules.ConvRules;
import dev.graft.trainer.autodiff.rules.GatherElementsRules;
import dev.graft.trainer.autodiff.rules.GatherRules;
import dev.graft.trainer.autodiff.rules.LogSumExpRules;
import dev.graft.trainer.autodiff.rules.MaskRules;
import dev.graft.trainer.autodiff.rules.MatMulRules;
import dev.graft.trainer.autodiff.rules.NormalizationRules;
import dev.graft.trainer.autodiff.rules.ReductionRules;
import dev.graft.trainer.autodiff.rules.ScatterRules;
import dev.graft.trainer.autodiff.rules.SelectionRules;
import dev.graft.trainer.autodiff.rules.ShapeRules;
import dev.graft.trainer.autodiff.rules.SoftmaxRules;
import dev.graft.trainer.autodiff.rules.TopKRules;
import dev.graft.trainer.autodiff.rules.UnpadRules;
import dev.graft.trainer.autodiff.rules.TrigRules;
import dev.graft.trainer.autodiff.rules.UnaryRules;
import java.util.Optional;
import java.util.Set;

/**
 * The gradient rules, one per default-domain operator (and {@code com.microsoft.Gelu}, which the
 * training copy's {@code GeluFusion} emits), in one immutable table. No reflection: an
 * operator has a rule exactly when it is listed here. {@link #with} makes an extended copy.
 */
public final class GradientRules {
  private static final GradientRules STANDARD =
      new GradientRules(
          ImmutableMap.<String, GradientRule>builder()
              // Elementwise arithmetic (numpy broadcasting).
              .put("Add", ArithmeticRules::add)
              .put("Sub", ArithmeticRules::sub)
              .put("Mul", ArithmeticRules::mul)
              .put("Div", ArithmeticRules::div)
              .put("Neg", ArithmeticRules::neg)
              .put("Pow", ArithmeticRules::pow)
              // Elementwise functions.
              .put("Sqrt", UnaryRules::sqrt)
              .put("Exp", UnaryRules::exp)
              .put("Log", UnaryRules::log)
              .put("Tanh", UnaryRules::tanh)
              .put("Sigmoid", UnaryRules::sigmoid)
              .put("Relu", UnaryRules::relu)
              .put("HardSigmoid", dev.graft.trainer.autodiff.rules.HardActivationRules::hardSigmoid)
              .put("HardSwish", dev.graft.trainer.autodiff.rules.HardActivationRules::hardSwish)
              .put("Erf", UnaryRules::erf)
              .put("Gelu", UnaryRules::gelu)
              // Selection.
              .put("Where", SelectionRules::where)
              .put("Clip", SelectionRules::clip)
              .put("Max", SelectionRules::maxOrMin)
              .put("Min", SelectionRules::maxOrMin)
              // Linear algebra.
              .put("MatMul", MatMulRules::matmul)
              .put("Gemm", MatMulRules::gemm)
              .put("Conv", ConvRules::conv)
              // Layout and identity-like ops.
              .put("Transpose", ShapeRules::transpose)
              .put("Reshape", ShapeRules::reshapeBack)
              .put("Flatten", ShapeRules::reshapeBack)
              .put("Squeeze", ShapeRules::reshapeBack)
              .put("Unsqueeze", ShapeRules::reshapeBack)
              .put("Expand", ShapeRules::expand)
              .put("Identity", ShapeRules::identity)
              .put("Cast", ShapeRules::cast)
              .put("Dropout", ShapeRules::dropout)
              .put("Concat", ConcatSplitSliceRules::concat)
              .put("Split", ConcatSplitSliceRules::split)
              .put("Slice", ConcatSplitSliceRules::slice)
              .put("Gather", GatherRules::gather)
              .put("GatherElements", GatherElementsRules::gatherElements)
              .put("ScatterElements", ScatterRules::scatterElements)
              .put("ScatterND", ScatterRules::scatterNd)
              .put("TopK", TopKRules::topK)
              // Reductions.
              .put("ReduceSum", ReductionRules::reduceSum)
              .put("ReduceMean", ReductionRules::reduceMean)
              .put("GlobalAveragePool", ReductionRules::globalAveragePool)
              .put("ReduceLogSumExp", LogSumExpRules::reduceLogSumExp)
              // Softmax family and losses.
              .put("Softmax", SoftmaxRules::softmax)
              .put("LogSoftmax", SoftmaxRules::logSoftmax)
              .put("SoftmaxCrossEntropyLoss", SoftmaxRules::softmaxCrossEntropyLoss)
              // Normalization.
              .put("LayerNormalization", NormalizationRules::layerNormalization)
              .put("BatchNormalization", NormalizationRules::batchNormalization)
              .put("Trilu", MaskRules::trilu)
              .put("Range", MaskRules::range)
              .put("Sin", TrigRules::sin)
              .put("Cos", TrigRules::cos)
              .put("Reciprocal", TrigRules::reciprocal)
              .put("com.microsoft.Gelu", UnaryRules::contribGelu)
              .put("com.microsoft.SkipLayerNormalization", NormalizationRules::skipLayerNormalization)
              .put(UnpadRules.DOMAIN + "." + UnpadRules.UNPAD, UnpadRules::unpad)
              .put(UnpadRules.DOMAIN + "." + UnpadRules.PAD, UnpadRules::pad)
              .put(UnpadRules.DOMAIN + "." + UnpadRules.UNPAD_HEADS, UnpadRules::unpadHeads)
              .put(UnpadRules.DOMAIN + "." + UnpadRules.PAD_HEADS, UnpadRules::padHeads)
              .buildOrThrow());

  private final ImmutableMap<String, GradientRule> byOp;

  private GradientRules(ImmutableMap<String, GradientRule> byOp) {
    this.byOp = byOp;
  }

  /** The built-in rules. */
  public static GradientRules standard() {
    return STANDARD;
  }

  /**
   * The rule for a node's operator: default-domain operators by op type, others (the contrib ops
   * the trainer's own fusions emit) as {@code domain.opType}.
   */
  public Optional<GradientRule> rule(Node n) {
    return Optional.ofNullable(byOp.get(n.domain().isEmpty() ? n.opType() : n.domain() + "." + n.opType()));
  }

  /** The operators that have a rule, sorted. */
  public Set<String> ops() {
    return ImmutableSortedSet.copyOf(byOp.keySet());
  }

  /** A copy with {@code rule} added for {@code opType} (which must not have one yet). */
  public GradientRules with(String opType, GradientRule rule) {
    checkArgument(!byOp.containsKey(opType), "Operator '%s' already has a gradient rule", opType);
    return new GradientRules(
        ImmutableMap.<String, GradientRule>builder().putAll(byOp).put(opType, rule).buildOrThrow());
  }
}
