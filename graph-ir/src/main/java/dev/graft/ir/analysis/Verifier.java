package dev.graft.ir.analysis;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Attr;
import dev.graft.ir.Function;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Use;
import dev.graft.ir.Value;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Deque;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * Checks the IR invariants of a model or graph and lists every violation.
 *
 * <p>What it checks, for a graph and (recursively) every subgraph, and for the body of every
 * model-local function:
 *
 * <ul>
 *   <li>value names are unique across scopes (a subgraph may not shadow an outer name);
 *   <li>each defined value's {@code graph()} is the graph that defines it, and the graph's name
 *       index finds it (and only its own values);
 *   <li>each node output's producer is that node at that index; graph inputs and initializers
 *       have no producer; initializers have a tensor;
 *   <li>each node is listed once, in the graph its {@code graph()} names; each subgraph's
 *       {@code parentNode()} is the node that holds it;
 *   <li>each node input is defined in scope: by this graph or one around it (a capture);
 *   <li>use lists agree both ways: every {@code Use(node, i)} of a value has {@code
 *       node.input(i)} equal to it, from a node in scope, and each input slot appears exactly once
 *       in its value's uses;
 *   <li>graph outputs are defined in scope; the nodes form no cycle (captures included).
 * </ul>
 *
 * <p>Linear in the size of the model (plus the nesting depth per subgraph node), so tests can run
 * it after every mutation. It reads only; it never repairs.
 */
public final class Verifier {
  private Verifier() {}

  /** Every problem in the model's main graph and in its functions' bodies; empty when valid. */
  public static ImmutableList<String> problems(Model m) {
    Walk w = new Walk();
    if (m.graph() != null) w.roots.add(m.graph());
    for (Function f : m.functions()) if (f.body() != null) w.roots.add(f.body());
    if (m.graph() == null) {
      w.problems.add("The model has no main graph. Set one with Model.setGraph.");
    } else {
      w.verifyTop(m.graph(), "graph '" + m.graph().name() + "'");
    }
    for (Function f : m.functions()) {
      if (f.body() == null) {
        w.problems.add("Function '" + f.id() + "' has no body.");
      } else {
        w.verifyTop(f.body(), "function '" + f.id() + "'");
      }
    }
    return ImmutableList.copyOf(w.problems);
  }

  /**
   * Every problem in {@code g} and its subgraphs; empty when valid. When {@code g} is itself a
   * subgraph, the values of the graphs around it count as in scope.
   */
  public static ImmutableList<String> problems(Graph g) {
    Walk w = new Walk();
    w.roots.add(root(g));
    w.verifyTop(g, "graph '" + g.name() + "'");
    return ImmutableList.copyOf(w.problems);
  }

  /** Throws {@link IrVerificationException} listing every problem, if there are any. */
  public static void verify(Model m) {
    ImmutableList<String> p = problems(m);
    if (!p.isEmpty()) {
      String name = m.graph() == null ? "" : m.graph().name();
      throw new IrVerificationException("Model '" + name + "'", p);
    }
  }

  /** Throws {@link IrVerificationException} listing every problem, if there are any. */
  public static void verify(Graph g) {
    ImmutableList<String> p = problems(g);
    if (!p.isEmpty()) throw new IrVerificationException("Graph '" + g.name() + "'", p);
  }

  private static Graph root(Graph g) {
    return g.topLevel();
  }

  /** One verification run: the scope stack and what has been seen so far. */
  private static final class Walk {
    final List<String> problems = new ArrayList<>();
    /** Names visible in the current scope chain, innermost definition winning no ties. */
    final Map<String, Value> nameInScope = new HashMap<>();
    /** Values defined by a graph of the current scope chain, and which graph defines each. */
    final Map<Value, Graph> owner = new IdentityHashMap<>();
    /** Labels of the graphs on the current scope chain, for messages. */
    final Map<Graph, String> label = new IdentityHashMap<>();
    final Set<Node> seenNodes = Collections.newSetFromMap(new IdentityHashMap<>());
    final Set<Graph> seenGraphs = Collections.newSetFromMap(new IdentityHashMap<>());
    /** Per value, how often each Use occurs in its use list; built on first need. */
    final Map<Value, Map<Use, Integer>> useCounts = new IdentityHashMap<>();
    /**
     * The outermost graphs this run verifies. A bad use by a node under one of them is reported
     * from the node's side (its input is undefined); from the value's side only when the node
     * lies outside, where no node-side check will see it.
     */
    final Set<Graph> roots = Collections.newSetFromMap(new IdentityHashMap<>());

    void verifyTop(Graph g, String what) {
      // A subgraph verified on its own still sees the values of the graphs around it.
      Deque<Graph> outer = new ArrayDeque<>();
      for (Optional<Graph> o = g.outerGraph(); o.isPresent(); o = o.get().outerGraph()) outer.push(o.get());
      List<Graph> registered = new ArrayList<>();
      for (Graph o : outer) {
        label.put(o, "graph '" + o.name() + "'");
        registerQuietly(o);
        registered.add(o);
      }
      seenGraphs.add(g);
      verifyGraph(g, what);
      Collections.reverse(registered);
      for (Graph o : registered) unregister(o, definitions(o));
    }

    void verifyGraph(Graph g, String what) {
      label.put(g, what);
      Set<Value> defs = definitions(g);
      register(g, defs);
      checkDefinitions(g, defs);
      List<Node> nodes = g.nodes();
      for (Node n : nodes) checkNode(g, n);
      checkOutputs(g);
      for (Value v : defs) checkUses(g, v);
      List<Node> cycle = TopologicalOrder.findCycle(g);
      if (!cycle.isEmpty()) problems.add(TopologicalOrder.describeCycle(g, cycle));
      // Subgraphs last: by now every value of g is in scope, wherever its producer is stored.
      for (Node n : nodes) {
        for (Map.Entry<String, Attr> e : n.attributeMap().entrySet()) {
          for (Graph sub : e.getValue().subgraphs()) {
            if (!seenGraphs.add(sub)) {
              problems.add(
                  "Graph '"
                      + sub.name()
                      + "' (attribute '"
                      + e.getKey()
                      + "' of node '"
                      + n.displayName()
                      + "') is held by more than one attribute. Give each attribute its own graph.");
              continue;
            }
            verifyGraph(
                sub,
                "graph '"
                    + sub.name()
                    + "' (attribute '"
                    + e.getKey()
                    + "' of node '"
                    + n.displayName()
                    + "' in "
                    + what
                    + ")");
          }
        }
      }
      unregister(g, defs);
      label.remove(g);
    }

    /** Inputs, initializers, sparse initializers and node outputs, each once, in that order. */
    static Set<Value> definitions(Graph g) {
      Set<Value> defs = Collections.newSetFromMap(new IdentityHashMap<>());
      List<Value> ordered = new ArrayList<>();
      for (Value v : g.inputs()) if (v != null && defs.add(v)) ordered.add(v);
      for (Value v : g.initializers()) if (defs.add(v)) ordered.add(v);
      for (Value v : g.sparseInitializers()) if (defs.add(v)) ordered.add(v);
      for (Node n : g.nodes()) {
        for (Value v : n.outputs()) if (v != null && defs.add(v)) ordered.add(v);
      }
      return new LinkedHashSet<>(ordered);
    }

    void registerQuietly(Graph g) {
      for (Value v : definitions(g)) {
        nameInScope.putIfAbsent(v.name(), v);
        owner.putIfAbsent(v, g);
      }
    }

    void register(Graph g, Set<Value> defs) {
      for (Value v : defs) {
        Value other = nameInScope.get(v.name());
        Graph otherOwner = owner.get(v);
        if (otherOwner != null) {
          problems.add(
              "Value '"
                  + v.name()
                  + "' is defined by both "
                  + label.get(otherOwner)
                  + " and "
                  + label.get(g)
                  + ". A value belongs to one graph; make a new value for the inner one.");
          continue;
        }
        if (other != null) {
          Graph where = owner.get(other);
          if (where == g) {
            problems.add(
                capitalized(label.get(g))
                    + " defines two different values named '"
                    + v.name()
                    + "'. Rename one with Graph.rename or Graph.freshName.");
          } else {
            problems.add(
                "Value '"
                    + v.name()
                    + "' of "
                    + label.get(g)
                    + " shadows the value of that name in "
                    + label.get(where)
                    + "; ONNX forbids shadowing. Rename one with Graph.rename or Graph.freshName.");
          }
        } else {
          nameInScope.put(v.name(), v);
        }
        owner.put(v, g);
      }
    }

    void unregister(Graph g, Set<Value> defs) {
      for (Value v : defs) {
        owner.remove(v, g);
        nameInScope.remove(v.name(), v);
      }
    }

    void checkDefinitions(Graph g, Set<Value> defs) {
      String where = label.get(g);
      for (Value v : defs) {
        if (!v.isIn(g)) {
          problems.add(
              "Value '"
                  + v.name()
                  + "' is defined by "
                  + where
                  + " but its graph() is "
                  + (!v.isAttached() ? "null" : "'" + v.graph().name() + "'")
                  + ". Add values through Graph methods, not to two graphs.");
        }
        if (g.value(v.name()).orElse(null) != v) {
          problems.add(
              capitalized(where)
                  + " defines '"
                  + v.name()
                  + "' but its name index does not find it, so lookups by name miss it."
                  + " Rename values with Graph.rename only.");
        }
      }
      for (Value v : g.values()) {
        if (!defs.contains(v)) {
          problems.add(
              capitalized(where)
                  + " indexes a value '"
                  + v.name()
                  + "' that is none of its inputs, initializers or node outputs.");
        }
      }
      for (Value v : g.inputs()) {
        if (v == null) {
          problems.add(capitalized(where) + " has a null input. Remove it.");
        } else if (v.producer().isPresent()) {
          problems.add(
              "Input '"
                  + v.name()
                  + "' of "
                  + where
                  + " is also output "
                  + v.producerIndex()
                  + " of node '"
                  + v.producer().get().displayName()
                  + "'. A value is a graph input or a node output, not both.");
        }
      }
      for (Value v : g.initializers()) {
        if (!v.isInitializer()) {
          problems.add(
              "Initializer '"
                  + v.name()
                  + "' of "
                  + where
                  + " has no tensor. Give it one with Graph.setInitializer.");
        }
        if (v.producer().isPresent()) {
          problems.add(
              "Initializer '"
                  + v.name()
                  + "' of "
                  + where
                  + " is also output "
                  + v.producerIndex()
                  + " of node '"
                  + v.producer().get().displayName()
                  + "'. Remove the node or the initializer.");
        }
      }
    }

    void checkNode(Graph g, Node n) {
      String where = label.get(g);
      if (!seenNodes.add(n)) {
        problems.add(
            "Node '"
                + n.displayName()
                + "' is listed more than once (again in "
                + where
                + "). A node belongs to one graph, once.");
      }
      if (!n.isIn(g)) {
        problems.add(
            "Node '"
                + n.displayName()
                + "' is listed in "
                + where
                + " but its graph() is "
                + (!n.isAttached() ? "null" : "'" + n.graph().name() + "'")
                + ". Add nodes with Graph.addNode or insertBefore/After only.");
      }
      List<Value> outs = n.outputs();
      for (int k = 0; k < outs.size(); k++) {
        Value v = outs.get(k);
        if (v == null) continue;
        Node p = v.producer().orElse(null);
        if (p != n || v.producerIndex() != k) {
          problems.add(
              "Output "
                  + k
                  + " ('"
                  + v.name()
                  + "') of node '"
                  + n.displayName()
                  + "' in "
                  + where
                  + " names "
                  + (p == null
                      ? "no producer"
                      : "output " + v.producerIndex() + " of node '" + p.displayName() + "'")
                  + " as its producer. A node's outputs are created by that node.");
        }
      }
      List<Value> ins = n.inputs();
      for (int i = 0; i < ins.size(); i++) {
        Value v = ins.get(i);
        if (v == null) continue;
        if (!owner.containsKey(v)) {
          problems.add(undefinedInput(g, n, i, v));
        }
        int count = useCounts.computeIfAbsent(v, Walk::countUses).getOrDefault(new Use(n, i), 0);
        if (count != 1) {
          problems.add(
              "Node '"
                  + n.displayName()
                  + "' input "
                  + i
                  + " in "
                  + where
                  + " reads '"
                  + v.name()
                  + "', but that value's use list has this use "
                  + count
                  + " times instead of once. Edit edges with Node.setInput only.");
        }
      }
      for (Graph sub : n.subgraphs()) {
        if (sub.parentNode().orElse(null) != n) {
          problems.add(
              "Subgraph '"
                  + sub.name()
                  + "' of node '"
                  + n.displayName()
                  + "' in "
                  + where
                  + " has parentNode() "
                  + sub.parentNode().map(p -> "'" + p.displayName() + "'").orElse("none")
                  + ". A graph is held by one node's attribute; copy it for another node.");
        }
      }
    }

    private String undefinedInput(Graph g, Node n, int i, Value v) {
      StringBuilder b = new StringBuilder();
      b.append("Node '")
          .append(n.displayName())
          .append("' input ")
          .append(i)
          .append(" reads '")
          .append(v.name())
          .append("', which no node, input or initializer of ")
          .append(label.get(g));
      if (g.outerGraph().isPresent()) b.append(" or of the graphs around it");
      b.append(" defines.");
      if (v.isAttached() && !v.isIn(g)) {
        b.append(" It belongs to graph '").append(v.graph().name()).append("', which is out of scope.");
      }
      b.append(" Add it to the graph, or rewire the input with setInput.");
      return b.toString();
    }

    private static Map<Use, Integer> countUses(Value v) {
      Map<Use, Integer> m = new HashMap<>();
      for (Use u : v.uses()) m.merge(u, 1, Integer::sum);
      return m;
    }

    void checkOutputs(Graph g) {
      List<Value> outs = g.outputs();
      for (int k = 0; k < outs.size(); k++) {
        Value v = outs.get(k);
        if (v == null) {
          problems.add(
              "Output " + k + " of " + label.get(g) + " is null. Set it with Graph.setOutput.");
        } else if (!owner.containsKey(v)) {
          problems.add(
              "Output "
                  + k
                  + " of "
                  + label.get(g)
                  + " is '"
                  + v.name()
                  + "', which no node, input or initializer in scope defines."
                  + " Point it at a defined value with Graph.setOutput.");
        }
      }
    }

    /** The value side of the use lists: each recorded use is a real input slot in scope. */
    void checkUses(Graph g, Value v) {
      for (Use u : v.uses()) {
        Node n = u.node();
        Value actual = n.input(u.index());
        if (actual != v) {
          problems.add(
              "Value '"
                  + v.name()
                  + "' of "
                  + label.get(g)
                  + " lists a use by node '"
                  + n.displayName()
                  + "' input "
                  + u.index()
                  + ", but that input "
                  + (u.index() >= n.inputCount()
                      ? "does not exist"
                      : actual == null ? "is empty" : "reads '" + actual.name() + "'")
                  + ". Edit edges with Node.setInput only.");
          continue;
        }
        String readBy =
            "Value '" + v.name() + "' of " + label.get(g) + " is read by node '" + n.displayName()
                + "' input " + u.index();
        if (!n.isAttached()) {
          problems.add(
              readBy
                  + ", which belongs to no graph. Add that node to a graph, or clear its inputs"
                  + " (setInput(i, null)) before dropping it.");
        } else if (!within(n.graph(), g) && !roots.contains(root(n.graph()))) {
          problems.add(
              readBy
                  + " in graph '"
                  + n.graph().name()
                  + "', where it is out of scope. Rewire that input with setInput.");
        }
      }
    }

    private static boolean within(Graph inner, Graph outer) {
      for (Optional<Graph> x = Optional.of(inner); x.isPresent(); x = x.get().outerGraph()) {
        if (x.get() == outer) return true;
      }
      return false;
    }

    private static String capitalized(String s) {
      return s.isEmpty() ? s : Character.toUpperCase(s.charAt(0)) + s.substring(1);
    }
  }
}
