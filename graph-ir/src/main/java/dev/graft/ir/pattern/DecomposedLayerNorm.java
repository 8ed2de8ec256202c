package dev.graft.ir.pattern;

import dev.graft.ir.Constants;
import dev.graft.ir.Node;
import dev.graft.ir.Use;
import dev.graft.ir.Value;
import dev.graft.ir.convert.Ranks;
import dev.graft.ir.tensor.Tensor;
import java.util.List;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.function.Function;
import java.util.function.Predicate;

/**
 * The LayerNorm that opset-11 exporters decompose, matched from its Div: the one matcher that
 * module discovery (a norm module) and {@code LayerNormFusion} (one LayerNormalization node) share,
 * so both accept and refuse the same graphs for the same reasons.
 *
 * <pre>
 *   m = ReduceMean[-1](x); c = Sub(x, m); v = ReduceMean[-1](Pow(c, 2) or Mul(c, c))
 *   n = Div(c, Sqrt(Add(v, eps)));  y = Mul(n, gamma)  [; y = Add(y, beta)]
 * </pre>
 *
 * Mul and Add take their operands in either order. The structure (Div of a Sub by a Sqrt of the
 * mean of the square of that Sub, the Sub being x minus its mean) decides whether a Div is a
 * candidate at all; a candidate is then refused, with the reason, when: no constant epsilon is
 * added to the variance, the exponent is not 2, a ReduceMean drops the axis or reduces another
 * than the last one alone, or the normalised value is not scaled by one Mul of a 1-D constant
 * gamma. Beta is optional. Whether the intermediates may be removed is the rewriter's question,
 * not the pattern's.
 *
 * @param addBeta the Add of beta, or null when there is none ({@code beta} and {@code betaIndex}
 *     then null and -1)
 * @param gammaIndex the input of {@code mul} that reads gamma
 */
public record DecomposedLayerNorm(
    Node mean, Node sub, Node square, Node variance, Node addEps, Node sqrt, Node div, Node mul, Node addBeta,
    Value x, Value gamma, int gammaIndex, Value beta, int betaIndex, float epsilon) {

  /**
   * How the matcher sees the graph: the constant behind a value (a rewriter may look through
   * wrappers it made), nodes to ignore as producers and readers (a rewriter's own inserts, Shape
   * readers), the rank of a value (for positive axes).
   */
  public record View(
      Function<Value, Optional<Tensor>> constant, Predicate<Node> ignored, Function<Value, OptionalInt> rank) {

    /** Constants as they are, every node counts, ranks from stored shapes and producers. */
    public static View plain() {
      Ranks ranks = new Ranks();
      return new View(Constants::valueOf, n -> false, ranks::rank);
    }
  }

  /** The nodes of the pattern in graph order, Div to the last affine node. */
  public List<Node> nodes() {
    return addBeta == null
        ? List.of(mean, sub, square, variance, addEps, sqrt, div, mul)
        : List.of(mean, sub, square, variance, addEps, sqrt, div, mul, addBeta);
  }

  /** The value the norm's readers read: beta's Add, or gamma's Mul without beta. */
  public Value output() {
    return addBeta == null ? mul.output() : addBeta.output();
  }

  public static MatchResult<DecomposedLayerNorm> match(Node div, View view) {
    if (!div.is("Div") || !div.domain().isEmpty() || view.ignored().test(div)) {
      return MatchResult.notThis("not a Div", div);
    }
    Node sub = producer(div.input(0), "Sub", view);
    Node sqrt = producer(div.input(1), "Sqrt", view);
    if (sub == null || sqrt == null) return MatchResult.notThis("not a Div of a Sub by a Sqrt", div);
    Node mean = producer(sub.input(1), "ReduceMean", view);
    Value x = sub.input(0);
    if (mean == null || mean.input(0) != x) return MatchResult.notThis("the Sub is not x minus its mean", sub);
    Value c = sub.output();

    // Under the Sqrt: Add(variance, eps), or the variance alone (a near miss: no epsilon).
    Node addEps = producer(sqrt.input(0), "Add", view);
    Node variance;
    Value epsValue = null;
    if (addEps != null) {
      int vi = isVariance(producer(addEps.input(0), "ReduceMean", view), c, view) ? 0
          : isVariance(producer(addEps.input(1), "ReduceMean", view), c, view) ? 1 : -1;
      if (vi < 0) return MatchResult.notThis("the Sqrt does not take the variance of x - mean", sqrt);
      variance = addEps.input(vi).producer().get();
      epsValue = addEps.input(1 - vi);
    } else {
      variance = producer(sqrt.input(0), "ReduceMean", view);
      if (!isVariance(variance, c, view)) return MatchResult.notThis("the Sqrt does not take the variance of x - mean", sqrt);
      return MatchResult.fail("no epsilon is added to the variance under the Sqrt", sqrt);
    }
    Node square = variance.input(0).producer().get();

    // The checks a candidate must pass.
    Optional<Float> eps = scalar(epsValue, view);
    if (eps.isEmpty()) return MatchResult.fail("epsilon is not a constant scalar", addEps);
    if (square.is("Pow")) {
      Optional<Float> two = scalar(square.input(1), view);
      if (two.isEmpty() || two.get() != 2f) return MatchResult.fail("the exponent is not the constant 2", square);
    }
    OptionalInt rank = view.rank().apply(x);
    for (Node reduce : List.of(mean, variance)) {
      if (reduce.attrLong("keepdims", 1) != 1) return MatchResult.fail("a ReduceMean drops the reduced axis", reduce);
      long[] axes = axes(reduce, view);
      if (axes == null || axes.length != 1) return MatchResult.fail("a ReduceMean does not reduce exactly one constant axis", reduce);
      boolean last = axes[0] == -1 || (rank.isPresent() && axes[0] == rank.getAsInt() - 1);
      if (!last) return MatchResult.fail("a ReduceMean reduces axis " + axes[0] + ", not the last axis", reduce);
    }

    // The affine tail: Mul by gamma, then an optional Add of beta, each the only reader.
    Optional<Use> mulUse = onlyReader(div.output(), view).filter(u -> u.node().is("Mul"));
    if (mulUse.isEmpty()) return MatchResult.fail("the normalised value is not scaled by one Mul", div);
    Node mul = mulUse.get().node();
    int gammaIndex = 1 - mulUse.get().index();
    Value gamma = mul.input(gammaIndex);
    if (!isVector(gamma, view)) return MatchResult.fail("gamma is not a 1-D constant", mul);
    Optional<Use> addUse = onlyReader(mul.output(), view).filter(u -> u.node().is("Add"));
    Node addBeta = null;
    Value beta = null;
    int betaIndex = -1;
    if (addUse.isPresent() && isVector(addUse.get().node().input(1 - addUse.get().index()), view)) {
      addBeta = addUse.get().node();
      betaIndex = 1 - addUse.get().index();
      beta = addBeta.input(betaIndex);
    }
    return MatchResult.match(
        new DecomposedLayerNorm(
            mean, sub, square, variance, addEps, sqrt, div, mul, addBeta, x, gamma, gammaIndex, beta, betaIndex, eps.get()));
  }

  /** {@code v} = ReduceMean of Pow(c, k) or Mul(c, c): the variance shape, whatever k is. */
  private static boolean isVariance(Node v, Value c, View view) {
    if (v == null) return false;
    Node sq = producer(v.input(0), "Pow", view);
    if (sq != null) return sq.input(0) == c;
    sq = producer(v.input(0), "Mul", view);
    return sq != null && sq.input(0) == c && sq.input(1) == c;
  }

  private static Node producer(Value v, String op, View view) {
    if (v == null) return null;
    Node p = v.producer().orElse(null);
    return p != null && p.is(op) && p.domain().isEmpty() && !view.ignored().test(p) ? p : null;
  }

  /** The one reader of {@code v} that computes with it (not ignored); none for a graph output. */
  private static Optional<Use> onlyReader(Value v, View view) {
    if (v.isGraphOutput()) return Optional.empty();
    List<Use> r = v.uses().stream().filter(u -> !view.ignored().test(u.node())).toList();
    return r.size() == 1 ? Optional.of(r.get(0)) : Optional.empty();
  }

  private static Optional<Float> scalar(Value v, View view) {
    if (v == null) return Optional.empty();
    return view.constant().apply(v).filter(t -> t.numElements() == 1).map(t -> (float) t.toDoubleArray()[0]);
  }

  private static boolean isVector(Value v, View view) {
    return v != null && view.constant().apply(v).map(t -> t.dims().length == 1).orElse(false);
  }

  private static long[] axes(Node reduce, View view) {
    Optional<long[]> attr = reduce.attrLongs("axes");
    if (attr.isPresent()) return attr.get();
    return reduce.input(1) == null ? null : view.constant().apply(reduce.input(1)).map(Tensor::toLongArray).orElse(null);
  }
}
