package dev.graft.ir.analysis;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Graph;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.PriorityQueue;
import java.util.Set;
import java.util.stream.Collectors;

/**
 * A stable topological order of a graph's nodes.
 *
 * <p>Kahn's algorithm, always taking the ready node that comes first in stored order: the result
 * is the lexicographically smallest topological order by stored position, so a graph that is
 * already sorted keeps its order exactly, and a sort disturbs an unsorted graph no more than it
 * must. That matters for golden tests and for diffs of saved models.
 *
 * <p>A node depends on the producers of its inputs and also on the producers of every value its
 * subgraphs read from this graph (captures): an If whose then-branch reads {@code %y} must run
 * after the node that makes {@code %y}, although {@code %y} is not one of the If's inputs. Values
 * from graphs around this one, graph inputs and initializers impose no order here.
 */
public final class TopologicalOrder {
  private TopologicalOrder() {}

  /**
   * The nodes of {@code g} in a stable topological order; {@code g} is not changed.
   *
   * @throws IllegalStateException if the nodes form a cycle; the message names the nodes on it
   */
  public static ImmutableList<Node> of(Graph g) {
    Result r = compute(g);
    if (!r.cycle.isEmpty()) {
      throw new IllegalStateException(describeCycle(g, r.cycle));
    }
    return r.order;
  }

  /**
   * As {@link #of}, for passes that must go on over an invalid graph (shape inference): nodes on
   * or behind a cycle follow the ordered ones, in stored order, rather than being dropped. The
   * one topological order of the house: analysis, shape inference and autodiff all use it.
   */
  public static ImmutableList<Node> lenient(Graph g) {
    Result r = compute(g);
    if (r.cycle.isEmpty()) return r.order;
    Set<Node> done = Collections.newSetFromMap(new IdentityHashMap<>());
    done.addAll(r.order);
    ImmutableList.Builder<Node> b = ImmutableList.builder();
    b.addAll(r.order);
    for (Node n : g.nodes()) if (!done.contains(n)) b.add(n);
    return b.build();
  }

  /**
   * Reorders the node lists of {@code g} and of all its nested subgraphs into stable topological
   * order (ONNX requires every graph, subgraphs included, to be sorted). Checks every graph for
   * cycles before it changes any.
   *
   * @return whether any node moved
   * @throws IllegalStateException if some graph has a cycle; nothing is changed then
   */
  public static boolean sort(Graph g) {
    List<Graph> graphs = new ArrayList<>();
    graphs.add(g);
    for (Node n : g.allNodes()) graphs.addAll(n.subgraphs());
    List<ImmutableList<Node>> orders = new ArrayList<>(graphs.size());
    for (Graph x : graphs) orders.add(of(x));
    boolean changed = false;
    for (int i = 0; i < graphs.size(); i++) {
      Graph x = graphs.get(i);
      if (!x.nodes().equals(orders.get(i))) {
        x.reorder(orders.get(i));
        changed = true;
      }
    }
    return changed;
  }

  /** The nodes of one cycle in {@code g}, in edge order, or empty when {@code g} is acyclic. */
  static ImmutableList<Node> findCycle(Graph g) {
    return compute(g).cycle;
  }

  /** "Graph 'main' has a cycle: 'A' -> 'B' -> 'A'. ..." */
  static String describeCycle(Graph g, List<Node> cycle) {
    String path =
        cycle.stream().map(n -> "'" + n.displayName() + "'").collect(Collectors.joining(" -> "));
    return "Graph '"
        + g.name()
        + "' has a cycle: "
        + path
        + " -> '"
        + cycle.get(0).displayName()
        + "'. Break it by rewiring one of these nodes' inputs with setInput.";
  }

  private record Result(ImmutableList<Node> order, ImmutableList<Node> cycle) {}

  private static Result compute(Graph g) {
    List<Node> nodes = g.nodes();
    int n = nodes.size();
    Map<Node, Integer> index = new IdentityHashMap<>(n * 2);
    for (int i = 0; i < n; i++) index.put(nodes.get(i), i);

    // Edges as two parallel growable int arrays, then compressed into successor and predecessor
    // tables; duplicate edges are harmless because in-degrees count them and Kahn removes each.
    IntPairs edges = new IntPairs();
    for (int i = 0; i < n; i++) {
      Node node = nodes.get(i);
      for (Value v : node.inputs()) addEdge(g, index, v, i, edges);
      for (Graph sub : node.subgraphs()) {
        for (Node inner : sub.allNodes()) {
          for (Value v : inner.inputs()) addEdge(g, index, v, i, edges);
        }
      }
    }
    int[][] succ = edges.adjacency(n, true);
    int[][] pred = edges.adjacency(n, false);

    int[] indegree = new int[n];
    for (int i = 0; i < n; i++) indegree[i] = pred[i].length;
    PriorityQueue<Integer> ready = new PriorityQueue<>();
    for (int i = 0; i < n; i++) if (indegree[i] == 0) ready.add(i);
    boolean[] emitted = new boolean[n];
    ImmutableList.Builder<Node> order = ImmutableList.builderWithExpectedSize(n);
    int count = 0;
    while (!ready.isEmpty()) {
      int i = ready.poll();
      emitted[i] = true;
      order.add(nodes.get(i));
      count++;
      for (int s : succ[i]) {
        if (--indegree[s] == 0) ready.add(s);
      }
    }
    if (count == n) return new Result(order.build(), ImmutableList.of());
    return new Result(order.build(), cycleAmong(nodes, pred, emitted));
  }

  private static void addEdge(Graph g, Map<Node, Integer> index, Value v, int to, IntPairs edges) {
    if (v == null) return;
    Optional<Node> producer = v.producer();
    if (producer.isEmpty() || !producer.get().isIn(g)) return;
    Integer from = index.get(producer.get());
    if (from != null) edges.add(from, to);
  }

  /**
   * One cycle among the nodes Kahn could not emit. Each of them still has an unemitted
   * predecessor, so walking predecessors from any of them must revisit a node: the walk from
   * that node on is a cycle. Linear in the number of edges.
   */
  private static ImmutableList<Node> cycleAmong(List<Node> nodes, int[][] pred, boolean[] emitted) {
    int start = 0;
    while (emitted[start]) start++;
    int[] position = new int[nodes.size()];
    Arrays.fill(position, -1);
    List<Integer> path = new ArrayList<>();
    int cur = start;
    while (position[cur] < 0) {
      position[cur] = path.size();
      path.add(cur);
      int next = -1;
      for (int p : pred[cur]) {
        if (!emitted[p]) {
          next = p;
          break;
        }
      }
      cur = next;
    }
    // path[position[cur]..] follows predecessor edges; reverse it to follow data flow, then start
    // at the node stored first so that the message does not depend on where the walk began.
    List<Integer> cycle = new ArrayList<>(path.subList(position[cur], path.size()));
    java.util.Collections.reverse(cycle);
    int first = 0;
    for (int k = 1; k < cycle.size(); k++) if (cycle.get(k) < cycle.get(first)) first = k;
    ImmutableList.Builder<Node> out = ImmutableList.builder();
    for (int k = 0; k < cycle.size(); k++) out.add(nodes.get(cycle.get((first + k) % cycle.size())));
    return out.build();
  }

  /** A growable list of (from, to) pairs of node positions. */
  private static final class IntPairs {
    private int[] from = new int[16];
    private int[] to = new int[16];
    private int size;

    void add(int f, int t) {
      if (size == from.length) {
        from = Arrays.copyOf(from, size * 2);
        to = Arrays.copyOf(to, size * 2);
      }
      from[size] = f;
      to[size] = t;
      size++;
    }

    /** Successors of each node when {@code forward}, else predecessors, in edge order. */
    int[][] adjacency(int n, boolean forward) {
      int[] key = forward ? from : to;
      int[] val = forward ? to : from;
      int[] degree = new int[n];
      for (int k = 0; k < size; k++) degree[key[k]]++;
      int[][] out = new int[n][];
      for (int i = 0; i < n; i++) out[i] = new int[degree[i]];
      int[] fill = new int[n];
      for (int k = 0; k < size; k++) out[key[k]][fill[key[k]]++] = val[k];
      return out;
    }
  }
}
