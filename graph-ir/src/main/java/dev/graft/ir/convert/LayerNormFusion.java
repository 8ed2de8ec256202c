package dev.graft.ir.convert;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Attr;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.ir.pattern.DecomposedLayerNorm;
import dev.graft.ir.pattern.MatchResult;
import java.util.ArrayList;
import java.util.List;

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
 * The match is {@link DecomposedLayerNorm}'s, the one module discovery uses too (so both refuse
 * the same near misses for the same reasons: an axis other than the last, no constant epsilon...);
 * beta may be absent. A match is fused only when no intermediate value is used elsewhere or is a
 * graph output. Refused candidates are reported with the reason. The nodes made dead, and Constant nodes that only fed
 * them, are removed. Fused nodes take the name of the Add they replace, and their output keeps
 * the old output name.
 */
public final class LayerNormFusion {
  private LayerNormFusion() {}

  /** Names of the LayerNormalization nodes made, and why other candidates were left alone. */
  public record Result(ImmutableList<String> fused, ImmutableList<String> refused) {}

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
    DecomposedLayerNorm.View view = DecomposedLayerNorm.View.plain();
    Graph g = m.graph();
    for (Node div : g.nodes()) {
      if (!div.isIn(g) || !div.is("Div")) continue;
      MatchResult<DecomposedLayerNorm> r = DecomposedLayerNorm.match(div, view);
      if (r instanceof MatchResult.NoMatch<DecomposedLayerNorm> no) {
        if (no.nearMiss()) refused.add(div.displayName() + ": " + no.reason());
        continue;
      }
      DecomposedLayerNorm ln = ((MatchResult.Match<DecomposedLayerNorm>) r).value();
      String why = removable(ln);
      if (why != null) {
        refused.add(div.displayName() + ": " + why);
        continue;
      }
      fused.add(rewrite(g, ln));
    }
    return new Result(fused.build(), refused.build());
  }

  /** Why the pattern's nodes cannot all be removed (a value read elsewhere), or null. */
  private static String removable(DecomposedLayerNorm m) {
    if (!usedOnlyBy(m.mean().output(), m.sub()) || !usedOnlyBy(m.square().output(), m.variance())
        || !usedOnlyBy(m.variance().output(), m.addEps()) || !usedOnlyBy(m.addEps().output(), m.sqrt())
        || !usedOnlyBy(m.sqrt().output(), m.div()) || !usedOnlyBy(m.div().output(), m.mul())
        || (m.addBeta() != null && !usedOnlyBy(m.mul().output(), m.addBeta()))) {
      return "an intermediate value is used outside the LayerNorm pattern";
    }
    Value c = m.sub().output();
    boolean onlyPattern = c.uses().stream().allMatch(u -> u.node() == m.square() || u.node() == m.div());
    if (c.isGraphOutput() || !onlyPattern) return "x - mean is used outside the LayerNorm pattern";
    return null;
  }

  private static String rewrite(Graph g, DecomposedLayerNorm m) {
    Node last = m.addBeta() == null ? m.mul() : m.addBeta();
    Value y = last.output();
    String name = y.name();
    String nodeName = last.name().isEmpty() ? g.freshName("LayerNormalization") : last.name();
    List<Value> inputs = m.beta() == null ? List.of(m.x(), m.gamma()) : List.of(m.x(), m.gamma(), m.beta());
    Node ln =
        new Node("", "LayerNormalization", inputs,
            List.of(g.freshName(name + "_ln")),
            List.of(Attr.of("axis", -1L), Attr.of("epsilon", m.epsilon())), nodeName);
    g.insertBefore(last, ln);
    List<Value> constantsFed = new ArrayList<>();
    List<Node> dead = new ArrayList<>(m.nodes());
    java.util.Collections.reverse(dead);
    for (Node n : dead) for (Value in : n.inputs()) if (in != null) constantsFed.add(in);
    g.replaceValue(y, ln.output(), dead);
    for (Value v : constantsFed) {
      Node p = v.producer().orElse(null);
      if (p != null && p.is("Constant") && p.isIn(g) && !v.hasUses() && !v.isGraphOutput()) g.removeNode(p);
    }
    return nodeName;
  }

  private static boolean usedOnlyBy(Value v, Node user) {
    return !v.isGraphOutput() && v.uses().stream().allMatch(u -> u.node() == user);
  }

}
