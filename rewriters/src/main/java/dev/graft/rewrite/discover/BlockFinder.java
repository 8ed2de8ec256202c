package dev.graft.rewrite.discover;

import static dev.graft.rewrite.discover.GraphFacts.constant;
import static dev.graft.rewrite.discover.GraphFacts.isConstant;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableSet;
import dev.graft.ir.Node;
import dev.graft.ir.Use;
import dev.graft.ir.Value;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.GraftTags;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.Set;

/**
 * Finds the blocks built from linear layers: attention (from its Softmax), feed-forward (from its
 * up projection) and residual adds. Works on the linears {@link LinearFinder} found, keyed by the
 * value each one produces and the value each one reads.
 */
final class BlockFinder {
  /** Ops that only move data between heads and sequence positions. */
  private static final ImmutableSet<String> HEAD_OPS =
      ImmutableSet.of("Reshape", "Transpose", "Identity", "Squeeze", "Unsqueeze");
  /** Ops an activation between two linears may consist of. */
  private static final ImmutableSet<String> ACTIVATION_OPS =
      ImmutableSet.of(
          "Relu", "Gelu", "Erf", "Tanh", "Sigmoid", "Softplus", "Elu", "Selu", "LeakyRelu",
          "HardSigmoid", "HardSwish", "Mish", "Clip", "Div", "Mul", "Add", "Sub", "Pow", "Sqrt",
          "Neg", "Exp", "Identity", "Cast", "Dropout");
  private static final ImmutableSet<String> PASS_OPS = ImmutableSet.of("Dropout", "Identity", "Cast");

  private final GraphFacts facts;
  private final Map<Value, LinearModule> byOutput;
  private final Map<Value, List<LinearModule>> byInput;

  BlockFinder(
      GraphFacts facts, Map<Value, LinearModule> byOutput, Map<Value, List<LinearModule>> byInput) {
    this.facts = facts;
    this.byOutput = byOutput;
    this.byInput = byInput;
  }

  // ---- attention ------------------------------------------------------------------------------

  /** The attention block around {@code softmax}, unnamed, if it is one. */
  Optional<AttentionModule> attention(Node softmax) {
    if (!softmax.is("Softmax") || GraftTags.isGraft(softmax)) return Optional.empty();
    List<Node> scoreOps = new ArrayList<>();
    Node maskAdd = null;
    Node score = null;
    Value cur = softmax.input(0);
    for (int step = 0; step < 6 && score == null; step++) {
      Node p = cur.producer().orElse(null);
      if (p == null || GraftTags.isGraft(p)) return Optional.empty();
      if (p.is("MatMul") && !isConstant(p.input(0)) && !isConstant(p.input(1))) {
        score = p;
      } else if ((p.is("Div") || p.is("Mul")) && isConstant(p.input(1))) {
        scoreOps.add(p);
        cur = p.input(0);
      } else if (p.is("Add") || p.is("Where")) {
        // The mask joins here: follow the operand that comes from the score MatMul.
        int scoreSide = p.is("Where") ? 1 : comesFromScores(p.input(0)) ? 0 : 1;
        if (isConstant(p.input(1 - scoreSide)) && p.is("Add")) {
          scoreOps.add(p);
        } else {
          maskAdd = p;
        }
        cur = p.input(scoreSide);
      } else if (PASS_OPS.contains(p.opType())) {
        scoreOps.add(p);
        cur = p.input(0);
      } else {
        return Optional.empty();
      }
    }
    if (score == null) return Optional.empty();

    // Softmax -> (Dropout) -> MatMul(probs, v): the context.
    Value probs = softmax.output();
    List<Node> probOps = new ArrayList<>();
    Node context = null;
    for (int step = 0; step < 3 && context == null; step++) {
      Optional<Use> r = GraphFacts.onlyReader(probs);
      if (r.isEmpty()) return Optional.empty();
      Node n = r.get().node();
      if (n.is("MatMul") && r.get().index() == 0) {
        context = n;
      } else if (PASS_OPS.contains(n.opType())) {
        probOps.add(n);
        probs = n.output();
      } else {
        return Optional.empty();
      }
    }
    if (context == null) return Optional.empty();

    List<Node> split = new ArrayList<>();
    Optional<LinearModule> q = projectionBehind(score.input(0), split);
    Optional<LinearModule> k = projectionBehind(score.input(1), split);
    Optional<LinearModule> v = projectionBehind(context.input(1), split);
    List<Node> merge = new ArrayList<>();
    Optional<LinearModule> o = projectionAfter(context.output(), merge);
    if (q.isEmpty() || k.isEmpty() || v.isEmpty() || o.isEmpty()) return Optional.empty();

    OptionalInt heads = numHeads(score.input(0));
    ImmutableList.Builder<Node> nodes = ImmutableList.builder();
    nodes.addAll(q.get().nodes()).addAll(k.get().nodes()).addAll(v.get().nodes()).addAll(split);
    nodes.add(score).addAll(scoreOps);
    if (maskAdd != null) nodes.add(maskAdd);
    nodes.add(softmax).addAll(probOps).add(context).addAll(merge).addAll(o.get().nodes());
    return Optional.of(
        new AttentionModule(
            "", OptionalInt.empty(), q.get(), k.get(), v.get(), o.get(), score, softmax, context,
            maskAdd, ImmutableList.copyOf(split), ImmutableList.copyOf(merge), heads,
            sortByPosition(nodes.build())));
  }

  /** Whether a few scaling or head ops above {@code v} reach a MatMul of two activations. */
  private static boolean comesFromScores(Value v) {
    Value cur = v;
    for (int i = 0; i < 4; i++) {
      Node p = cur.producer().orElse(null);
      if (p == null) return false;
      if (p.is("MatMul")) return !isConstant(p.input(0)) && !isConstant(p.input(1));
      if (!(p.is("Div") || p.is("Mul") || PASS_OPS.contains(p.opType()))) return false;
      cur = p.input(0);
    }
    return false;
  }

  /** Walks up from a score or context operand through head ops to the projection that made it. */
  private Optional<LinearModule> projectionBehind(Value v, List<Node> path) {
    Value cur = v;
    for (int step = 0; step < 8; step++) {
      // A merge (prefix tuning's Concat of the keys) stands for the operand it wraps.
      cur = GraftTags.origin(cur);
      LinearModule l = byOutput.get(cur);
      if (l != null) return Optional.of(l);
      Node p = cur.producer().orElse(null);
      if (p == null || GraftTags.isGraft(p)) return Optional.empty();
      boolean scale = (p.is("Div") || p.is("Mul")) && isConstant(p.input(1));
      if (!HEAD_OPS.contains(p.opType()) && !scale) return Optional.empty();
      path.add(p);
      cur = p.input(0);
    }
    return Optional.empty();
  }

  /** Walks down from the context through the head merge to the output projection. */
  private Optional<LinearModule> projectionAfter(Value v, List<Node> path) {
    Value cur = v;
    for (int step = 0; step < 8; step++) {
      List<LinearModule> readers = byInput.getOrDefault(cur, List.of());
      if (readers.size() == 1) return Optional.of(readers.get(0));
      Optional<Use> r = GraphFacts.onlyReader(cur);
      if (r.isEmpty() || r.get().index() != 0 || !HEAD_OPS.contains(r.get().node().opType())) {
        return Optional.empty();
      }
      path.add(r.get().node());
      cur = r.get().node().output();
    }
    return Optional.empty();
  }

  /** Heads from the split Reshape's target: a constant [.., .., H, d] or a Concat with constant H. */
  private static OptionalInt numHeads(Value queryOperand) {
    Value cur = queryOperand;
    for (int i = 0; i < 6; i++) {
      Node p = cur.producer().orElse(null);
      if (p == null) break;
      if (p.is("Reshape")) {
        Optional<Tensor> c = constant(p.input(1));
        if (c.isPresent() && c.get().numElements() == 4) {
          return OptionalInt.of((int) c.get().toLongArray()[2]);
        }
        Node concat = p.input(1).producer().orElse(null);
        if (concat != null && concat.is("Concat") && concat.inputCount() == 4) {
          Optional<Tensor> h = constant(concat.input(2));
          if (h.isPresent() && h.get().numElements() == 1) {
            return OptionalInt.of((int) h.get().toLongArray()[0]);
          }
        }
        break;
      }
      cur = p.input(0);
    }
    return OptionalInt.empty();
  }

  // ---- feed-forward ---------------------------------------------------------------------------

  /**
   * The feed-forward block that starts at {@code up}: the nodes reachable from its output before
   * the next linear are all elementwise, read nothing from outside but constants, and lead to
   * exactly one linear, the down projection, which maps back to {@code up}'s input width.
   */
  Optional<FeedForwardModule> feedForward(LinearModule up) {
    if (up.kind() != ModuleKind.LINEAR) return Optional.empty();
    Set<Node> region = new LinkedHashSet<>();
    Set<Value> inside = new java.util.HashSet<>();
    inside.add(up.output());
    Set<LinearModule> ends = new LinkedHashSet<>();
    Deque<Value> todo = new ArrayDeque<>();
    todo.add(up.output());
    while (!todo.isEmpty()) {
      Value v = todo.pop();
      if (v.isGraphOutput()) return Optional.empty();
      for (LinearModule l : byInput.getOrDefault(v, List.of())) ends.add(l);
      for (Use u : GraphFacts.dataReaders(v)) {
        Node n = u.node();
        if (byInput.getOrDefault(v, List.of()).stream().anyMatch(l -> l.node() == n)) continue;
        if (!ACTIVATION_OPS.contains(n.opType()) || !n.domain().isEmpty()) return Optional.empty();
        if (region.add(n)) {
          if (region.size() > 16) return Optional.empty();
          inside.add(n.output());
          todo.add(n.output());
        }
      }
    }
    for (Node n : region) {
      for (Value in : n.inputs()) {
        if (in != null && !inside.contains(in) && !isConstant(in)) return Optional.empty();
      }
    }
    if (region.isEmpty() || ends.size() != 1) return Optional.empty();
    LinearModule down = ends.iterator().next();
    if (down.kind() != ModuleKind.LINEAR || down.outFeatures() != up.inFeatures()) {
      return Optional.empty();
    }
    ImmutableList<Node> activation = sortByPosition(ImmutableList.copyOf(region));
    ImmutableList<Node> nodes =
        sortByPosition(
            ImmutableList.<Node>builder()
                .addAll(up.nodes())
                .addAll(activation)
                .addAll(down.nodes())
                .build());
    return Optional.of(new FeedForwardModule("", OptionalInt.empty(), up, down, activation, nodes));
  }

  // ---- residual -------------------------------------------------------------------------------

  /** The residual add {@code n}, unnamed, if one of its operands is computed from the other. */
  Optional<ResidualModule> residual(Node n) {
    if (!n.is("Add") || GraftTags.isGraft(n)) return Optional.empty();
    Value a = n.input(0);
    Value b = n.input(1);
    if (a == null || b == null || isConstant(a) || isConstant(b) || a == b) return Optional.empty();
    int skip;
    if (facts.dependsOn(a, b)) {
      skip = 1;
    } else if (facts.dependsOn(b, a)) {
      skip = 0;
    } else {
      return Optional.empty();
    }
    return Optional.of(new ResidualModule("", OptionalInt.empty(), n, skip, "", ImmutableList.of(n)));
  }

  /** The linear whose result the residual's branch carries (through Dropout and the like). */
  Optional<LinearModule> branchLinear(ResidualModule r) {
    Value cur = r.add().input(1 - r.skipIndex());
    for (int i = 0; i < 4; i++) {
      LinearModule l = byOutput.get(cur);
      if (l != null) return Optional.of(l);
      Node p = cur.producer().orElse(null);
      if (p == null || !PASS_OPS.contains(p.opType())) return Optional.empty();
      cur = p.input(0);
    }
    return Optional.empty();
  }

  ImmutableList<Node> sortByPosition(ImmutableList<Node> nodes) {
    return nodes.stream()
        .distinct()
        .sorted(java.util.Comparator.comparingInt(facts::position))
        .collect(ImmutableList.toImmutableList());
  }
}
