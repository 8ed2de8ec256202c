package dev.graft.ir.convert;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Attr;
import dev.graft.ir.Constants;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.ir.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * Fuses the LayerNorm that exporters decompose back into one LayerNormalization node (opset 17
 * and newer, so run {@link OpsetUpgrade} first):
 *
 * <pre>
 *   mean = ReduceMean[-1](x); d = Sub(x, mean); v = ReduceMean[-1](Pow(d, 2))
 *   y = Add(Mul(Div(d, Sqrt(Add(v, eps))), gamma), beta)
 *     =>  y = LayerNormalization[axis=-1, epsilon=eps](x, gamma, beta)
 * </pre>
 *
 * The match starts at each Div and is pure; a candidate is fused only when both means reduce the
 * last axis alone (keepdims=1), the exponent is 2, eps is a constant scalar, gamma and beta are
 * 1-D constants, and no intermediate value is used elsewhere or is a graph output. Refused
 * candidates are reported with the reason. The nodes made dead, and Constant nodes that only fed
 * them, are removed. Fused nodes take the name of the Add they replace, and their output keeps
 * the old output name.
 */
public final class LayerNormFusion {
  private LayerNormFusion() {}

  /** Names of the LayerNormalization nodes made, and why other candidates were left alone. */
  public record Result(ImmutableList<String> fused, ImmutableList<String> refused) {}

  private record Match(
      Node mean, Node sub, Node pow, Node var, Node addEps, Node sqrt, Node div, Node mul,
      Node addBeta, Value x, Value gamma, Value beta, float epsilon) {}

  public static Result fuse(Model m) {
    long opset = m.defaultOpset().orElse(0);
    if (opset < 17) {
      throw new OpsetUpgradeException(
          "LayerNormalization needs opset 17, the model is at opset "
              + opset
              + ". Run OpsetUpgrade.upgrade(model) first.");
    }
    ImmutableList.Builder<String> fused = ImmutableList.builder();
    ImmutableList.Builder<String> refused = ImmutableList.builder();
    Ranks ranks = new Ranks();
    Graph g = m.graph();
    for (Node div : g.nodes()) {
      if (div.graph() != g || !div.is("Div")) continue;
      Object r = match(div, ranks);
      if (r instanceof String why) {
        if (!why.isEmpty()) refused.add(div.displayName() + ": " + why);
        continue;
      }
      fused.add(rewrite(g, (Match) r));
    }
    return new Result(fused.build(), refused.build());
  }

  /** A Match, or a reason ("" when the Div is not a normalisation at all). */
  private static Object match(Node div, Ranks ranks) {
    Node sub = producer(div.input(0), "Sub");
    Node sqrt = producer(div.input(1), "Sqrt");
    if (sub == null || sqrt == null) return "";
    Node addEps = producer(sqrt.input(0), "Add");
    if (addEps == null) return "";
    Node var = producer(addEps.input(0), "ReduceMean");
    Value epsValue = addEps.input(1);
    if (var == null) {
      var = producer(addEps.input(1), "ReduceMean");
      epsValue = addEps.input(0);
    }
    if (var == null) return "";
    Node pow = producer(var.input(0), "Pow");
    if (pow == null || pow.input(0) != sub.output()) return "";
    Node mean = producer(sub.input(1), "ReduceMean");
    if (mean == null || mean.input(0) != sub.input(0)) return "";
    Value x = sub.input(0);

    Optional<Float> two = scalar(pow.input(1));
    if (two.isEmpty() || two.get() != 2f) return "the exponent is not the constant 2";
    Optional<Float> eps = scalar(epsValue);
    if (eps.isEmpty()) return "epsilon is not a constant scalar";
    OptionalInt rank = ranks.rank(x);
    for (Node reduce : List.of(mean, var)) {
      if (reduce.attrLong("keepdims", 1) != 1) return "a ReduceMean drops the reduced axis";
      long[] axes = axes(reduce);
      if (axes == null || axes.length != 1) return "a ReduceMean does not reduce exactly one constant axis";
      boolean last = axes[0] == -1 || (rank.isPresent() && axes[0] == rank.getAsInt() - 1);
      if (!last) return "a ReduceMean reduces axis " + axes[0] + ", not the last axis";
    }
    Node mul = onlyUser(div.output(), "Mul");
    if (mul == null) return "the normalised value is not scaled by one Mul";
    Value gamma = other(mul, div.output());
    Node addBeta = onlyUser(mul.output(), "Add");
    if (addBeta == null) return "the scaled value is not shifted by one Add";
    Value beta = other(addBeta, mul.output());
    if (!isVector(gamma) || !isVector(beta)) return "gamma or beta is not a 1-D constant";
    // every intermediate value must feed only the pattern
    if (!usedOnlyBy(mean.output(), sub) || !usedOnlyBy(pow.output(), var)
        || !usedOnlyBy(var.output(), addEps) || !usedOnlyBy(addEps.output(), sqrt)
        || !usedOnlyBy(sqrt.output(), div)) {
      return "an intermediate value is used outside the LayerNorm pattern";
    }
    List<Node> subUsers = sub.output().uses().stream().map(u -> u.node()).toList();
    if (sub.output().isGraphOutput() || subUsers.size() != 2 || !subUsers.contains(pow) || !subUsers.contains(div)) {
      return "x - mean is used outside the LayerNorm pattern";
    }
    return new Match(mean, sub, pow, var, addEps, sqrt, div, mul, addBeta, x, gamma, beta, eps.get());
  }

  private static String rewrite(Graph g, Match m) {
    Value y = m.addBeta.output();
    String name = y.name();
    String nodeName = m.addBeta.name().isEmpty() ? g.freshName("LayerNormalization") : m.addBeta.name();
    Node ln =
        new Node("", "LayerNormalization", List.of(m.x, m.gamma, m.beta),
            List.of(g.freshName(name + "_ln")),
            List.of(Attr.of("axis", -1L), Attr.of("epsilon", m.epsilon)), nodeName);
    g.insertBefore(m.addBeta, ln);
    ln.output().setType(y.type());
    boolean listed = g.valueInfo().contains(y);
    y.replaceAllUsesWith(ln.output(), true);
    List<Value> constantsFed = new ArrayList<>();
    for (Node n : List.of(m.addBeta, m.mul, m.div, m.sqrt, m.addEps, m.var, m.pow, m.sub, m.mean)) {
      for (Value in : n.inputs()) if (in != null) constantsFed.add(in);
      g.removeNode(n);
    }
    for (Value v : constantsFed) {
      Node p = v.producer().orElse(null);
      if (p != null && p.is("Constant") && p.graph() == g && !v.hasUses() && !v.isGraphOutput()) g.removeNode(p);
    }
    g.rename(ln.output(), name);
    if (listed) g.addValueInfo(ln.output());
    return nodeName;
  }

  private static Node producer(Value v, String op) {
    if (v == null) return null;
    Node p = v.producer().orElse(null);
    return p != null && p.is(op) ? p : null;
  }

  private static Node onlyUser(Value v, String op) {
    if (v.isGraphOutput() || v.uses().size() != 1) return null;
    Node n = v.uses().get(0).node();
    return n.is(op) ? n : null;
  }

  private static boolean usedOnlyBy(Value v, Node user) {
    return !v.isGraphOutput() && v.uses().stream().allMatch(u -> u.node() == user);
  }

  private static Value other(Node binary, Value known) {
    return binary.input(0) == known ? binary.input(1) : binary.input(0);
  }

  private static Optional<Tensor> constant(Value v) {
    return Constants.valueOf(v);
  }

  private static Optional<Float> scalar(Value v) {
    return constant(v)
        .filter(t -> t.numElements() == 1)
        .map(t -> (float) t.toDoubleArray()[0]);
  }

  private static boolean isVector(Value v) {
    return constant(v).map(t -> t.dims().length == 1).orElse(false);
  }

  private static long[] axes(Node reduce) {
    Optional<long[]> attr = reduce.attrLongs("axes");
    if (attr.isPresent()) return attr.get();
    return constant(reduce.input(1)).map(Tensor::toLongArray).orElse(null);
  }
}
