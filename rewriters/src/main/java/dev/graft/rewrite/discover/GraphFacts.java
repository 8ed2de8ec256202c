package dev.graft.rewrite.discover;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Constants;
import dev.graft.ir.DataType;
import dev.graft.ir.Graph;
import dev.graft.ir.Node;
import dev.graft.ir.Use;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.TopologicalOrder;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.GraftTags;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/** Read-only questions about one graph that the module finders share: constants, order, paths. */
final class GraphFacts {
  final Graph graph;
  private final Map<Node, Integer> position = new IdentityHashMap<>();

  GraphFacts(Graph graph) {
    this.graph = graph;
    ImmutableList<Node> order = TopologicalOrder.of(graph);
    for (int i = 0; i < order.size(); i++) position.put(order.get(i), i);
  }

  /** Topological position of {@code n}; -1 for a node not in this graph. */
  int position(Node n) {
    return position.getOrDefault(n, -1);
  }

  /** Position of the node that makes {@code v}; -1 for graph inputs and initializers. */
  int position(Value v) {
    return v.producer().map(this::position).orElse(-1);
  }

  /** The constant behind {@code v} (initializer or Constant node), looking through Graft merges. */
  static Optional<Tensor> constant(Value v) {
    if (v == null) return Optional.empty();
    return Constants.valueOf(GraftTags.origin(v));
  }

  static boolean isConstant(Value v) {
    return constant(v).isPresent();
  }

  /** A float constant of the given rank. */
  static Optional<Tensor> floatConstant(Value v, int rank) {
    return constant(v).filter(t -> t.dataType() == DataType.FLOAT && t.dims().length == rank);
  }

  static Optional<Node> producer(Value v) {
    return v == null ? Optional.empty() : v.producer();
  }

  static boolean producedBy(Value v, String op) {
    return producer(v).filter(p -> p.is(op) && !GraftTags.isGraft(p)).isPresent();
  }

  /**
   * The readers of {@code v} that compute with it: not Shape nodes (exporters read shapes of
   * everything) and not nodes Graft inserted (adapters read the input of the layer they adapt).
   */
  static ImmutableList<Use> dataReaders(Value v) {
    return v.uses().stream()
        .filter(u -> !u.node().is("Shape") && !GraftTags.isGraft(u.node()))
        .collect(ImmutableList.toImmutableList());
  }

  /** The only data reader of {@code v}, if it has exactly one. */
  static Optional<Use> onlyReader(Value v) {
    ImmutableList<Use> r = dataReaders(v);
    return r.size() == 1 ? Optional.of(r.get(0)) : Optional.empty();
  }

  /** Whether {@code a} is computed from {@code b}: b is an input of some node on a path to a. */
  boolean dependsOn(Value a, Value b) {
    if (a == b) return true;
    int floor = position(b);
    Deque<Node> todo = new ArrayDeque<>();
    Set<Node> seen = new HashSet<>();
    a.producer().ifPresent(todo::add);
    while (!todo.isEmpty()) {
      Node n = todo.pop();
      if (!seen.add(n)) continue;
      for (Value in : n.inputs()) {
        if (in == null) continue;
        if (in == b) return true;
        // Nodes before b's producer cannot have b among their ancestors.
        in.producer().filter(p -> position(p) > floor).ifPresent(todo::push);
      }
    }
    return false;
  }

  /**
   * A readable path from a node name the way exporters write module paths: {@code
   * /encoder/layer.0/attention/self/query/MatMul} gives {@code encoder.layer.0.attention.self.query};
   * "" when the name has no path.
   */
  static String hintPath(Node n) {
    String name = n.name();
    int last = name.lastIndexOf('/');
    if (last <= 0) return "";
    String path = name.substring(0, last);
    while (path.startsWith("/")) path = path.substring(1);
    return path.replace('/', '.').replace("::", ".");
  }
}
