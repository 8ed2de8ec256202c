package dev.graft.rewrite.discover;

import static dev.graft.rewrite.discover.GraphFacts.constant;
import static dev.graft.rewrite.discover.GraphFacts.isConstant;
import static dev.graft.rewrite.discover.GraphFacts.producedBy;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Node;
import dev.graft.ir.Use;
import dev.graft.ir.Value;
import dev.graft.ir.convert.Ranks;
import dev.graft.ir.pattern.DecomposedLayerNorm;
import dev.graft.ir.pattern.MatchResult;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.GraftTags;
import dev.graft.rewrite.discover.NormModule.Style;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * Finds normalisations: LayerNormalization, BatchNormalization, and the decomposed LayerNorm that
 * opset-11 exporters write, matched from its Div by {@link DecomposedLayerNorm}, the matcher the
 * LayerNorm fusion ({@code graft convert}) uses too, seen through Graft's merges:
 *
 * <pre>
 *   m = ReduceMean(x); c = Sub(x, m); v = ReduceMean(Pow(c, 2)); n = Div(c, Sqrt(Add(v, eps)))
 *   y = Add(Mul(n, gamma), beta)
 * </pre>
 */
final class NormFinder {
  private NormFinder() {}

  static Optional<NormModule> norm(Node n) {
    if (GraftTags.isGraft(n) || !n.domain().isEmpty()) return Optional.empty();
    return switch (n.opType()) {
      case "LayerNormalization" -> fused(n, Style.LAYER_NORMALIZATION);
      case "BatchNormalization" -> fused(n, Style.BATCH_NORMALIZATION);
      case "Div" -> decomposed(n).matchValue();
      default -> Optional.empty();
    };
  }

  private static Optional<NormModule> fused(Node n, Style style) {
    Optional<Tensor> gamma = constant(n.input(1));
    if (n.input(0) == null || gamma.isEmpty()) return Optional.empty();
    Value beta = n.input(2) == null ? null : GraftTags.origin(n.input(2));
    return Optional.of(
        new NormModule(
            "", OptionalInt.empty(), style, n.input(0), n.output(), GraftTags.origin(n.input(1)),
            beta, new Use(n, 1), beta == null ? null : new Use(n, 2), gamma.get().numElements(),
            ImmutableList.of(n)));
  }

  /** How discovery sees the graph: through Graft's merges, ignoring its nodes and Shape readers. */
  static final DecomposedLayerNorm.View VIEW =
      new DecomposedLayerNorm.View(GraphFacts::constant, n -> GraftTags.isGraft(n) || n.is("Shape"), v -> new Ranks().rank(v));

  /** The decomposed LayerNorm at {@code div}, or why not: {@link DecomposedLayerNorm}'s rules. */
  static MatchResult<NormModule> decomposed(Node div) {
    return DecomposedLayerNorm.match(div, VIEW).map(NormFinder::module);
  }

  private static NormModule module(DecomposedLayerNorm ln) {
    Node mul = ln.mul();
    Node add = ln.addBeta();
    Tensor gamma = constant(ln.gamma()).orElseThrow();
    return new NormModule(
        "", OptionalInt.empty(), Style.DECOMPOSED_LAYER_NORM, ln.x(), ln.output(),
        GraftTags.origin(ln.gamma()), add == null ? null : GraftTags.origin(ln.beta()), new Use(mul, ln.gammaIndex()),
        add == null ? null : new Use(add, ln.betaIndex()), gamma.numElements(), ImmutableList.copyOf(ln.nodes()));
  }
}
