package dev.graft.trainer.autodiff;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableMap;
import com.google.common.collect.ImmutableSet;
import dev.graft.ir.DataType;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.convert.OpsetUpgrade;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.TopologicalOrder;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.Deque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * Reverse-mode differentiation over the IR: appends to a graph the nodes that compute the gradient
 * of a scalar loss with respect to chosen values (trainable initializers, or the graph inputs that
 * carry trainable parameters in a train-step graph), in standard ONNX operators only.
 *
 * <p>The driver does the shared work once, so that rules stay a few lines: it visits only the
 * nodes on a path from a trainable value to the loss (frozen weights, integer tensors and shape
 * computations get no gradient), walks them in reverse topological order, sums the contributions
 * to a value that fans out with one Sum node, and fails with the operator, the node and how to
 * proceed where a rule is missing.
 *
 * <pre>
 *   y = MatMul(x, W); loss = ReduceSum(y)     gradients(g, loss, {W})
 *   =>  ... ; dy = ConstantOfShape/Expand(1); dW = MatMul(Transpose(x), dy)   returns {W: dW}
 * </pre>
 */
public final class Backprop {
  /** The oldest default-domain opset whose operator forms the rules read and emit. */
  public static final long MIN_OPSET = OpsetUpgrade.WORKING_OPSET;

  /** Ops whose outputs are never differentiable, whatever their (possibly unknown) types. */
  private static final Set<String> NON_DIFFERENTIABLE =
      ImmutableSet.of(
          "Shape", "Size", "ArgMax", "ArgMin", "Equal", "Less", "Greater", "LessOrEqual",
          "GreaterOrEqual", "Not", "And", "Or", "Xor", "IsNaN", "IsInf", "NonZero", "OneHot",
          "ConstantOfShape", "Constant", "TopK_indices", "Range", "EyeLike", "RandomNormalLike",
          "RandomUniformLike", "Bernoulli", "Multinomial");

  private final Graph graph;
  private final GradientRules rules;
  private final GradBuilder b;

  private Backprop(Graph graph, GradientRules rules, long opset) {
    // The rules speak the working dialect only (Softmax on one axis, Reduce* axes as inputs...):
    // models meet autodiff after WorkingModels' upgrade.
    checkArgument(
        opset >= MIN_OPSET,
        "The gradient rules speak opset %s or newer, not %s. Load the model with"
            + " WorkingModels.load (or upgrade it: graft convert --opset %s) first.",
        MIN_OPSET,
        opset,
        MIN_OPSET);
    this.graph = graph;
    this.rules = rules;
    this.b = new GradBuilder(graph, opset);
  }

  /**
   * Appends gradient nodes to {@code model}'s graph; the model must be at opset {@value
   * #MIN_OPSET} or newer (upgrade it first).
   */
  public static Map<Value, Value> gradients(Model model, Value loss, Collection<Value> trainables) {
    WorkingModels.requireWorkingOpset(model, "Autodiff");
    long opset = model.defaultOpset().orElse(MIN_OPSET);
    return new Backprop(model.graph(), GradientRules.standard(), opset).run(loss, trainables);
  }

  /** Appends gradient nodes to {@code g}, assumed at opset {@value #MIN_OPSET} or newer. */
  public static Map<Value, Value> gradients(Graph g, Value loss, Collection<Value> trainables) {
    return new Backprop(g, GradientRules.standard(), MIN_OPSET).run(loss, trainables);
  }

  /** As {@link #gradients(Graph, Value, Collection)}, with a given rule table and opset. */
  public static Map<Value, Value> gradients(
      Graph g, Value loss, Collection<Value> trainables, GradientRules rules, long opset) {
    return new Backprop(g, rules, opset).run(loss, trainables);
  }

  private Map<Value, Value> run(Value loss, Collection<Value> trainables) {
    checkArgument(
        graph.lookup(loss.name()).orElse(null) == loss,
        "The loss '%s' is not a value of graph '%s'",
        loss.name(),
        graph.name());
    for (Value t : trainables) {
      checkArgument(
          graph.lookup(t.name()).orElse(null) == t,
          "Trainable '%s' is not a value of graph '%s'",
          t.name(),
          graph.name());
      checkArgument(
          t.dataType().map(DataType::isFloatingPoint).orElse(true),
          "Trainable '%s' is %s; only floating-point tensors have gradients. Freeze it.",
          t.name(),
          t.dataType().orElse(null));
    }
    List<Node> order = topologicalOrder();
    Set<Value> needs = valuesNeedingGradients(order, loss, trainables);
    if (SavedStatistics.expose(graph, order, needs) > 0) {
      order = topologicalOrder();
      needs = valuesNeedingGradients(order, loss, trainables);
    }

    Map<Value, List<Value>> contributions = new IdentityHashMap<>();
    // Values whose gradient is complete: every forward reader differentiated, the sum made.
    Map<Value, Value> totals = new IdentityHashMap<>();
    Set<Node> forwardNodes = Collections.newSetFromMap(new IdentityHashMap<>());
    forwardNodes.addAll(graph.nodes());
    b.context(forwardNodes, totals::get);
    if (needs.contains(loss)) {
      b.enterDriver(loss.name() + "/seed");
      contributions.computeIfAbsent(loss, k -> new ArrayList<>()).add(seed(loss));
    }
    for (int i = order.size() - 1; i >= 0; i--) {
      Node n = order.get(i);
      if (!producesNeeded(n, needs)) continue;
      List<Value> outGrads = new ArrayList<>();
      boolean any = false;
      for (Value out : n.outputs()) {
        Value g = out == null ? null : total(out, contributions);
        if (g != null) totals.put(out, g);
        outGrads.add(g);
        any |= g != null;
      }
      if (!any) continue;
      GradientRule rule =
          rules
              .rule(n)
              .orElseThrow(
                  () ->
                      new IllegalStateException(
                          "No gradient rule for operator '"
                              + (n.domain().isEmpty() ? "" : n.domain() + ".")
                              + n.opType()
                              + "' (node '"
                              + n.displayName()
                              + "'), which lies between a trainable parameter and the loss."
                              + " Freeze the parameters that lead through it, or add a rule in"
                              + " GradientRules."));
      b.enter(n, needs::contains);
      List<Optional<Value>> inGrads = rule.backward(b, n, outGrads);
      checkArgument(
          inGrads.size() <= n.inputCount(),
          "The rule for %s returned %s gradients for node '%s', which has %s inputs",
          n.opType(),
          inGrads.size(),
          n.displayName(),
          n.inputCount());
      for (int k = 0; k < n.inputCount(); k++) {
        Value in = n.input(k);
        if (in == null || !needs.contains(in)) continue;
        Optional<Value> g = k < inGrads.size() ? inGrads.get(k) : Optional.empty();
        if (g.isEmpty()) {
          throw new IllegalStateException(
              "Operator '"
                  + n.opType()
                  + "' (node '"
                  + n.displayName()
                  + "') gives no gradient for its input "
                  + k
                  + " ('"
                  + in.name()
                  + "'), which depends on a trainable parameter. Freeze the parameters that"
                  + " lead into that input, or extend its rule in GradientRules.");
        }
        Value gv = g.get();
        if (gv.type().isEmpty()) gv.setTypeOf(in);
        contributions.computeIfAbsent(in, k2 -> new ArrayList<>()).add(gv);
      }
    }
    b.enterDriver("zeros");
    ImmutableMap.Builder<Value, Value> out = ImmutableMap.builder();
    for (Value t : new LinkedHashSet<>(trainables)) {
      Value g = total(t, contributions);
      out.put(t, g != null ? g : b.zerosLike(t));
    }
    return out.buildOrThrow();
  }

  /** dLoss/dLoss: ones shaped like the loss (a scalar loss gives a rank-0 one). */
  private Value seed(Value loss) {
    Value one = b.scalar(1.0, loss);
    return b.expandLike(one, loss);
  }

  /** The summed gradient of {@code v}, emitting one Sum node the first time it is asked for. */
  private Value total(Value v, Map<Value, List<Value>> contributions) {
    List<Value> cs = contributions.get(v);
    if (cs == null || cs.isEmpty()) return null;
    if (cs.size() == 1) return cs.get(0);
    // Called before the reading node's rule runs, which re-enters the builder for it.
    b.enterDriver(v.name() + "/sum");
    Value s = b.op("Sum", cs);
    s.setTypeOf(v);
    contributions.put(v, new ArrayList<>(List.of(s)));
    return s;
  }

  private static boolean producesNeeded(Node n, Set<Value> needs) {
    for (Value o : n.outputs()) {
      if (o != null && needs.contains(o)) return true;
    }
    return false;
  }

  /**
   * Values on a path from a trainable to the loss that can carry a gradient: reachable forward
   * from a trainable through differentiable values, and backward from the loss.
   */
  private Set<Value> valuesNeedingGradients(List<Node> order, Value loss, Collection<Value> trainables) {
    Set<Value> forward = new HashSet<>(trainables);
    for (Node n : order) {
      boolean reads = false;
      for (Value in : n.inputs()) {
        if (in != null && forward.contains(in)) reads = true;
      }
      if (!reads) continue;
      for (Value o : n.outputs()) {
        if (o != null && differentiable(n, o)) forward.add(o);
      }
    }
    Set<Value> backward = new HashSet<>();
    Deque<Value> work = new ArrayDeque<>(List.of(loss));
    while (!work.isEmpty()) {
      Value v = work.pop();
      if (!backward.add(v)) continue;
      v.producer()
          .filter(p -> p.isIn(graph))
          .ifPresent(
              p -> {
                for (Value in : p.inputs()) if (in != null) work.push(in);
              });
    }
    Set<Value> both = new HashSet<>(forward);
    both.retainAll(backward);
    return both;
  }

  private static boolean differentiable(Node producer, Value v) {
    Optional<DataType> dt = v.dataType();
    if (dt.isPresent()) return dt.get().isFloatingPoint();
    if (!producer.domain().isEmpty()) return true;
    if (NON_DIFFERENTIABLE.contains(producer.opType())) return false;
    if (producer.is("Cast")) {
      return DataType.fromCode((int) producer.attrLong("to", 0)).isFloatingPoint();
    }
    return true;
  }

  /**
   * The graph's nodes in the house's one stable topological order ({@link TopologicalOrder#of}:
   * stored order where it already is one); a cycle is an error naming its nodes.
   */
  private List<Node> topologicalOrder() {
    return TopologicalOrder.of(graph);
  }
}
