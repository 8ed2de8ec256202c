package dev.graft.ir.convert;

import static com.google.common.base.Preconditions.checkState;

import dev.graft.ir.Attr;
import dev.graft.ir.Graph;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;

/**
 * The editing surface a rule gets for one graph: new constants, new nodes placed before the node
 * being upgraded, and replacement of a node by values that keep its output names (so graph
 * outputs, value_info and names that other tools print stay the same).
 *
 * <p>Constants become initializers with fresh names, shared when equal; in a function body, which
 * ONNX gives no initializers, they become Constant nodes.
 */
public final class UpgradeContext {
  private final Graph graph;
  private final boolean functionBody;
  private final Ranks ranks;
  private final Map<String, Value> constants = new HashMap<>();

  UpgradeContext(Graph graph, boolean functionBody, Ranks ranks) {
    this.graph = graph;
    this.functionBody = functionBody;
    this.ranks = ranks;
  }

  public Graph graph() {
    return graph;
  }

  /** The rank of a value, when its stored shape or its producers fix it. */
  public OptionalInt rank(Value v) {
    return ranks.rank(v);
  }

  /** A 1-D int64 constant (axes, split sizes), usable by {@code user}. */
  public Value int64s(Node user, String hint, long... values) {
    return constant(user, hint, DenseTensor.vector(hint, values));
  }

  /** A rank-0 float constant, usable by {@code user}. */
  public Value floatScalar(Node user, String hint, float value) {
    return constant(user, hint, DenseTensor.scalar(hint, value));
  }

  /** A constant value holding {@code t}, defined before {@code user}. */
  public Value constant(Node user, String hint, Tensor t) {
    if (functionBody) {
      String name = graph.freshName(hint);
      Node c = new Node("", "Constant", List.of(), List.of(name), List.of(Attr.of("value", t)), name);
      graph.insertBefore(user, c);
      c.output().setType(dev.graft.ir.Type.tensor(t.dataType(), t.dims()));
      return c.output();
    }
    String key = t.dataType() + Arrays.toString(t.dims()) + Arrays.toString(t.toDoubleArray());
    Value cached = constants.get(key);
    if (cached != null) return cached;
    String name = graph.freshName(hint);
    Value v = graph.addInitializer(name, t.withName(name));
    constants.put(key, v);
    return v;
  }

  /** Inserts {@code n} just before {@code anchor} and returns it. */
  public Node insertBefore(Node anchor, Node n) {
    return graph.insertBefore(anchor, n);
  }

  /** A name for a node a rule adds on behalf of {@code base}. */
  public String nodeName(Node base, String suffix) {
    return (base.name().isEmpty() ? base.opType() : base.name()) + "/" + suffix;
  }

  /** A fresh value name derived from {@code base}'s first output. */
  public String freshValueName(Node base, String suffix) {
    Value out = base.outputs().stream().filter(v -> v != null).findFirst().orElse(null);
    return graph.freshName((out == null ? base.opType() : out.name()) + "_" + suffix);
  }

  /**
   * Replaces {@code old} by the given values, one per output of {@code old} (null where that
   * output is unused), then removes {@code old}. Each replacement takes over the old output's name,
   * type, value_info entry and graph output slot.
   *
   * <pre>
   *   y = Old(x); z = F(y)     replaceNode(Old, [y'])     y' = New(...) named y; z = F(y')
   * </pre>
   */
  public void replaceNode(Node old, List<Value> replacements) {
    List<Value> outs = old.outputs();
    checkState(
        replacements.size() == outs.size(),
        "replacing '%s': %s replacements for %s outputs",
        old.displayName(),
        replacements.size(),
        outs.size());
    List<String> names = new ArrayList<>();
    List<Boolean> listed = new ArrayList<>();
    for (int i = 0; i < outs.size(); i++) {
      Value o = outs.get(i);
      Value r = replacements.get(i);
      names.add(o == null ? null : o.name());
      listed.add(o != null && graph.valueInfo().contains(o));
      if (o == null) continue;
      if (r == null) {
        checkState(
            !o.hasUses() && !o.isGraphOutput(),
            "Cannot drop output '%s' of '%s': it is still used. This is a bug in the rule for %s.",
            o.name(),
            old.displayName(),
            old.opType());
        continue;
      }
      if (r.type().isEmpty()) r.setTypeOf(o);
      o.replaceAllUsesWith(r, true);
    }
    graph.removeNode(old);
    for (int i = 0; i < outs.size(); i++) {
      Value r = replacements.get(i);
      if (outs.get(i) == null || r == null) continue;
      graph.rename(r, names.get(i));
      if (listed.get(i)) graph.addValueInfo(r);
    }
  }

  /** A copy of {@code n} under another op type and output list; same inputs, attributes, name. */
  public Node copyOf(Node n, String opType, List<String> outputNames, List<Attr> attrs) {
    Node c = new Node(n.rawDomain(), opType, n.inputs(), outputNames, attrs, n.rawName());
    c.setDocString(n.docString());
    return c;
  }
}
