package dev.graft.rewrite.discover;

import static dev.graft.rewrite.discover.GraphFacts.constant;
import static dev.graft.rewrite.discover.GraphFacts.isConstant;
import static dev.graft.rewrite.discover.GraphFacts.producedBy;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Node;
import dev.graft.ir.Use;
import dev.graft.ir.Value;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.GraftTags;
import dev.graft.rewrite.discover.NormModule.Style;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * Finds normalisations: LayerNormalization, BatchNormalization, and the decomposed LayerNorm that
 * opset-11 exporters write,
 *
 * <pre>
 *   m = ReduceMean(x); c = Sub(x, m); v = ReduceMean(Pow(c, 2)); n = Div(c, Sqrt(Add(v, eps)))
 *   y = Add(Mul(n, gamma), beta)
 * </pre>
 *
 * matched from its Div, with {@code Mul(c, c)} accepted for the Pow and either operand order for
 * the Mul and the Add.
 */
final class NormFinder {
  private NormFinder() {}

  static Optional<NormModule> norm(Node n) {
    if (GraftTags.isGraft(n) || !n.domain().isEmpty()) return Optional.empty();
    return switch (n.opType()) {
      case "LayerNormalization" -> fused(n, Style.LAYER_NORMALIZATION);
      case "BatchNormalization" -> fused(n, Style.BATCH_NORMALIZATION);
      case "Div" -> decomposed(n);
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

  private static Optional<NormModule> decomposed(Node div) {
    Value centered = div.input(0);
    if (!producedBy(div.input(1), "Sqrt") || !producedBy(centered, "Sub")) return Optional.empty();
    Node sqrt = div.input(1).producer().get();
    if (!producedBy(sqrt.input(0), "Add")) return Optional.empty();
    Node addEps = sqrt.input(0).producer().get();
    int epsIndex = isConstant(addEps.input(1)) ? 1 : isConstant(addEps.input(0)) ? 0 : -1;
    if (epsIndex < 0 || !producedBy(addEps.input(1 - epsIndex), "ReduceMean")) return Optional.empty();
    Node variance = addEps.input(1 - epsIndex).producer().get();
    Value sq = variance.input(0);
    if (!isSquareOf(sq, centered)) return Optional.empty();
    Node sub = centered.producer().get();
    Value x = sub.input(0);
    if (!producedBy(sub.input(1), "ReduceMean") || sub.input(1).producer().get().input(0) != x) {
      return Optional.empty();
    }
    Node mean = sub.input(1).producer().get();

    // The affine tail: Mul by gamma, then Add of beta, each the only data reader.
    Value normed = div.output();
    Optional<Use> mulUse = GraphFacts.onlyReader(normed).filter(u -> u.node().is("Mul"));
    if (mulUse.isEmpty()) return Optional.empty();
    Node mul = mulUse.get().node();
    int gammaIndex = 1 - mulUse.get().index();
    Optional<Tensor> gamma = constant(mul.input(gammaIndex));
    if (gamma.isEmpty()) return Optional.empty();
    ImmutableList.Builder<Node> nodes = ImmutableList.builder();
    nodes.add(mean, sub, sq.producer().get(), variance, addEps, sqrt, div, mul);
    Value out = mul.output();
    Value beta = null;
    Use shift = null;
    Optional<Use> addUse = GraphFacts.onlyReader(out).filter(u -> u.node().is("Add"));
    if (addUse.isPresent() && isConstant(addUse.get().node().input(1 - addUse.get().index()))) {
      Node add = addUse.get().node();
      int betaIndex = 1 - addUse.get().index();
      beta = GraftTags.origin(add.input(betaIndex));
      shift = new Use(add, betaIndex);
      out = add.output();
      nodes.add(add);
    }
    return Optional.of(
        new NormModule(
            "", OptionalInt.empty(), Style.DECOMPOSED_LAYER_NORM, x, out,
            GraftTags.origin(mul.input(gammaIndex)), beta, new Use(mul, gammaIndex), shift,
            gamma.get().numElements(), nodes.build()));
  }

  /** Pow(c, 2) or Mul(c, c). */
  private static boolean isSquareOf(Value sq, Value c) {
    if (producedBy(sq, "Pow")) {
      Node pow = sq.producer().get();
      Optional<Tensor> e = constant(pow.input(1));
      return pow.input(0) == c
          && e.isPresent()
          && e.get().numElements() == 1
          && e.get().toDoubleArray()[0] == 2.0;
    }
    if (producedBy(sq, "Mul")) {
      Node mul = sq.producer().get();
      return mul.input(0) == c && mul.input(1) == c;
    }
    return false;
  }
}
