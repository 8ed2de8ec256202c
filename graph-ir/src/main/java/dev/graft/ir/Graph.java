package dev.graft.ir;

import static com.google.common.base.Preconditions.checkArgument;
import static com.google.common.base.Preconditions.checkState;

import com.google.common.base.Strings;
import com.google.common.collect.ImmutableList;
import dev.graft.ir.tensor.Tensor;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.Deque;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Collectors;

/**
 * A graph: inputs, initializers, nodes in stored order, and outputs. Also a subgraph of an If,
 * Loop or Scan node ({@link #parentNode()}), or the body of a model-local function.
 *
 * <p>Invariants: value names are unique in the graph's scope, which includes the scopes of the
 * graphs around it (ONNX forbids shadowing); a node's inputs are values of this graph or of an
 * enclosing one (subgraph captures); every mutation keeps use lists exact. Node order is the
 * order nodes were stored or inserted; {@code analysis.TopologicalOrder} computes a stable
 * topological order without changing it. Removal checks everything first, then mutates.
 *
 * <p>Nodes form a doubly linked list through the nodes themselves, so adding, inserting next to
 * an anchor and removing are O(1) and a pass that edits every linear of a 40,000-node graph
 * stays linear in its size; {@link #nodes()} is an O(n) snapshot, safe to iterate while editing.
 */
public final class Graph {
  private String name;
  private String docString;
  private byte[] extras = new byte[0];
  private Node first;
  private Node last;
  private int nodeCount;
  /** Nodes that hold (or held) subgraph attributes: where {@link #freshName} looks below. */
  private final Set<Node> subgraphHolders = Collections.newSetFromMap(new IdentityHashMap<>());
  /** How many nodes of this graph carry each name (names should be unique; counts keep it exact). */
  private final Map<String, Integer> nodeNames = new HashMap<>();
  private final List<Value> inputs = new ArrayList<>();
  private final List<Value> outputs = new ArrayList<>();
  private final LinkedHashMap<String, Value> initializers = new LinkedHashMap<>();
  private final LinkedHashMap<String, Value> sparseInitializers = new LinkedHashMap<>();
  private final LinkedHashSet<Value> valueInfo = new LinkedHashSet<>();
  private final Map<String, Value> byName = new HashMap<>();
  private Node parentNode;
  private int freshCounter;

  public Graph(String name) {
    this.name = name;
  }

  public String name() {
    return name;
  }

  public void setName(String name) {
    this.name = name;
  }

  public String docString() {
    return docString;
  }

  public void setDocString(String docString) {
    this.docString = docString;
  }

  /** Unmodelled GraphProto fields (quantization annotations, metadata, unknown fields). */
  public byte[] extras() {
    return extras.clone();
  }

  public void setExtras(byte[] extras) {
    this.extras = extras == null ? new byte[0] : extras.clone();
  }

  /** The node whose attribute holds this graph; empty for a top-level graph. */
  public Optional<Node> parentNode() {
    return Optional.ofNullable(parentNode);
  }

  void setParentNode(Node n) {
    this.parentNode = n;
  }

  /** The graph around this one; empty for a top-level graph (as {@link #parentNode()}). */
  public Optional<Graph> outerGraph() {
    return Optional.ofNullable(outer());
  }

  /** The outermost graph around this one: this graph itself when it is top-level. */
  public Graph topLevel() {
    Graph top = this;
    while (top.outer() != null) top = top.outer();
    return top;
  }

  /** The graph around this one, null for a top-level graph: for the scope walks in this class. */
  private Graph outer() {
    return parentNode == null || !parentNode.isAttached() ? null : parentNode.graph();
  }

  // ---- lookups ------------------------------------------------------------------------------

  /** A snapshot of the nodes in stored order. */
  public List<Node> nodes() {
    ImmutableList.Builder<Node> b = ImmutableList.builderWithExpectedSize(nodeCount);
    // Bounded by the count, so that a corrupted list (a cycle) shows as repeats, not a hang.
    int i = 0;
    for (Node n = first; n != null && i < nodeCount; n = n.next, i++) b.add(n);
    return b.build();
  }

  /** The node stored right after {@code n}, if any; O(1). */
  public Optional<Node> nodeAfter(Node n) {
    checkArgument(n.isIn(this), "node '%s' is not in graph '%s'", n.displayName(), name);
    return Optional.ofNullable(n.next);
  }

  /** The first node in stored order, if any; O(1). */
  public Optional<Node> firstNode() {
    return Optional.ofNullable(first);
  }

  public int nodeCount() {
    return nodeCount;
  }

  public List<Value> inputs() {
    return ImmutableList.copyOf(inputs);
  }

  public List<Value> outputs() {
    return ImmutableList.copyOf(outputs);
  }

  /** Initializers in stored order. */
  public Collection<Value> initializers() {
    return ImmutableList.copyOf(initializers.values());
  }

  public Optional<Value> initializer(String name) {
    return Optional.ofNullable(initializers.get(name));
  }

  public Collection<Value> sparseInitializers() {
    return ImmutableList.copyOf(sparseInitializers.values());
  }

  /** Values that had (or should get) a value_info entry, in order. */
  public List<Value> valueInfo() {
    return ImmutableList.copyOf(valueInfo);
  }

  /** Marks {@code v} to be listed in value_info on save (shape inference does this). */
  public void addValueInfo(Value v) {
    valueInfo.add(v);
  }

  public void clearValueInfo() {
    valueInfo.clear();
  }

  /** The value of this name in this graph's own scope. */
  public Optional<Value> value(String name) {
    return Optional.ofNullable(byName.get(name));
  }

  /** The value of this name here or in an enclosing graph. */
  public Optional<Value> lookup(String name) {
    for (Graph g = this; g != null; g = g.outer()) {
      Value v = g.byName.get(name);
      if (v != null) return Optional.of(v);
    }
    return Optional.empty();
  }

  /** The value of this name; throws with the name when it does not exist. */
  public Value valueOrThrow(String name) {
    return lookup(name)
        .orElseThrow(
            () -> new IllegalArgumentException("Graph '" + this.name + "' has no value '" + name + "'"));
  }

  /** All values defined in this graph's own scope. */
  public Collection<Value> values() {
    return ImmutableList.copyOf(byName.values());
  }

  /** A name not used in this graph's scope, nor in enclosing ones: {@code prefix}, prefix_1, ... */
  public String freshName(String prefix) {
    Graph top = topLevel();
    String candidate = prefix;
    while (lookup(candidate).isPresent() || top.nameUsedBelow(candidate)) {
      candidate = prefix + "_" + (++freshCounter);
    }
    return candidate;
  }

  private boolean nameUsedBelow(String n) {
    if (byName.containsKey(n)) return true;
    for (Node node : subgraphHolders) {
      for (Graph g : node.subgraphs()) {
        if (g.nameUsedBelow(n)) return true;
      }
    }
    return false;
  }

  // ---- inputs, outputs, initializers -----------------------------------------------------------

  /** Adds a graph input. */
  public Value addInput(Value v) {
    if (!byName.containsKey(v.name()) || byName.get(v.name()) != v) define(v);
    inputs.add(v);
    return v;
  }

  /** Adds a graph input by name and type. */
  public Value addInput(String name, Type type) {
    return addInput(new Value(name, type));
  }

  /** Removes a graph input that nothing uses. */
  public void removeInput(Value v) {
    checkArgument(inputs.contains(v), "'%s' is not an input of graph '%s'", v.name(), name);
    checkState(
        !v.hasUses() || v.isInitializer(),
        "Cannot remove input '%s': it is still used by %s. Rewire its uses first.",
        v.name(),
        v.uses());
    inputs.remove(v);
    if (!v.isInitializer()) undefine(v);
  }

  public void addOutput(Value v) {
    checkArgument(
        lookup(v.name()).orElse(null) == v,
        "Output '%s' is not a value of graph '%s' or an enclosing graph",
        v.name(),
        name);
    outputs.add(v);
  }

  public void setOutput(int i, Value v) {
    outputs.set(i, v);
  }

  public void removeOutput(Value v) {
    checkArgument(outputs.remove(v), "'%s' is not an output of graph '%s'", v.name(), name);
  }

  void replaceOutput(Value old, Value replacement) {
    outputs.replaceAll(v -> v == old ? replacement : v);
  }

  /**
   * Adds an initializer named like the tensor (or {@code name}). If a graph input of that name
   * exists (old models list initializers as inputs too), the initializer attaches to that value.
   */
  public Value addInitializer(String name, Tensor tensor) {
    checkArgument(!Strings.isNullOrEmpty(name), "an initializer needs a name");
    checkArgument(
        !initializers.containsKey(name), "Graph '%s' already has an initializer '%s'", this.name, name);
    Value v = byName.get(name);
    if (v == null) {
      v = new Value(name, Type.tensor(tensor.dataType(), tensor.shape()));
      define(v);
    } else {
      checkArgument(
          v.producer().isEmpty(),
          "Cannot add initializer '%s': node '%s' already produces that value",
          name,
          v.producer().map(Node::displayName).orElse(""));
    }
    v.setInitializerInternal(tensor);
    initializers.put(name, v);
    return v;
  }

  public Value addInitializer(Tensor tensor) {
    return addInitializer(tensor.name(), tensor);
  }

  /** Replaces the data of an existing initializer, keeping its value and uses. */
  public void setInitializer(Value v, Tensor tensor) {
    checkArgument(initializers.get(v.name()) == v, "'%s' is not an initializer of '%s'", v.name(), name);
    v.setInitializerInternal(tensor);
    if (v.type().isEmpty()) v.setType(Type.tensor(tensor.dataType(), tensor.shape()));
  }

  /**
   * Drops the default of a graph input that is also an initializer (an "overridable
   * initializer"): it stays an input, with its type and uses, and must now be fed.
   */
  public void dropInputDefault(Value v) {
    checkArgument(
        inputs.contains(v) && initializers.get(v.name()) == v,
        "'%s' is not an input with an initializer default in graph '%s'",
        v.name(),
        name);
    if (v.type().isEmpty()) {
      Tensor t = v.initializer().orElseThrow();
      v.setType(Type.tensor(t.dataType(), t.shape()));
    }
    initializers.remove(v.name());
    v.setInitializerInternal(null);
  }

  /** Removes an initializer nothing uses (and its graph input, if it was listed as one). */
  public void removeInitializer(Value v) {
    checkArgument(initializers.get(v.name()) == v, "'%s' is not an initializer of '%s'", v.name(), name);
    checkState(
        !v.hasUses(),
        "Cannot remove initializer '%s': it is still used by %s. Rewire its uses first.",
        v.name(),
        v.uses());
    checkState(!outputs.contains(v), "Cannot remove initializer '%s': it is a graph output", v.name());
    initializers.remove(v.name());
    v.setInitializerInternal(null);
    if (!inputs.contains(v)) undefine(v);
  }

  /** Adds a sparse initializer kept as an opaque serialized SparseTensorProto. */
  public Value addSparseInitializer(String name, byte[] serialized) {
    Value v = byName.get(name);
    if (v == null) {
      v = new Value(name, null);
      define(v);
    }
    v.setSparseInitializerInternal(serialized);
    sparseInitializers.put(name, v);
    return v;
  }

  // ---- nodes --------------------------------------------------------------------------------

  /** Appends a node; its outputs join this graph's scope. */
  public Node addNode(Node n) {
    return insertBefore0(null, n);
  }

  /** Inserts {@code n} just before {@code anchor}; O(1). */
  public Node insertBefore(Node anchor, Node n) {
    checkAnchor(anchor);
    return insertBefore0(anchor, n);
  }

  /** Inserts {@code n} just after {@code anchor}; O(1). */
  public Node insertAfter(Node anchor, Node n) {
    checkAnchor(anchor);
    return insertBefore0(anchor.next, n);
  }

  private void checkAnchor(Node anchor) {
    checkArgument(anchor.isIn(this), "node '%s' is not in graph '%s'", anchor.displayName(), name);
  }

  /** Links {@code n} in before {@code next} (null: at the end), after checking its names. */
  private Node insertBefore0(Node next, Node n) {
    checkArgument(!n.isAttached(), "node '%s' already belongs to a graph", n.displayName());
    for (Value out : n.outputs()) {
      if (out == null) continue;
      checkArgument(
          lookup(out.name()).isEmpty(),
          "Cannot add node '%s': graph '%s' already has a value named '%s'. Use freshName().",
          n.displayName(),
          name,
          out.name());
    }
    for (Value out : n.outputs()) {
      if (out != null) define(out);
    }
    link(next, n);
    countNodeName(n.rawName(), 1);
    n.setGraph(this);
    if (!n.subgraphs().isEmpty()) subgraphHolders.add(n);
    return n;
  }

  private void link(Node next, Node n) {
    Node prev = next == null ? last : next.prev;
    n.prev = prev;
    n.next = next;
    if (prev == null) first = n;
    else prev.next = n;
    if (next == null) last = n;
    else next.prev = n;
    nodeCount++;
  }

  private void unlink(Node n) {
    if (n.prev == null) first = n.next;
    else n.prev.next = n.next;
    if (n.next == null) last = n.prev;
    else n.next.prev = n.prev;
    n.prev = null;
    n.next = null;
    nodeCount--;
  }

  private void countNodeName(String nodeName, int delta) {
    if (Strings.isNullOrEmpty(nodeName)) return;
    nodeNames.merge(nodeName, delta, (a, b) -> a + b == 0 ? null : a + b);
  }

  /** Called by {@link Node#setName} when a node of this graph is renamed. */
  void nodeRenamed(String oldName, String newName) {
    countNodeName(oldName, -1);
    countNodeName(newName, 1);
  }

  /**
   * Whether a node of this model's graph tree (the top-level graph around this one and every
   * subgraph in it) has the name {@code nodeName}; O(1) plus the subgraphs, so that builders can
   * pick fresh node names without scanning the graph.
   */
  public boolean nodeNameUsed(String nodeName) {
    return topLevel().nodeNameUsedBelow(nodeName);
  }

  private boolean nodeNameUsedBelow(String nodeName) {
    if (nodeNames.containsKey(nodeName)) return true;
    for (Node holder : subgraphHolders) {
      for (Graph g : holder.subgraphs()) {
        if (g.nodeNameUsedBelow(nodeName)) return true;
      }
    }
    return false;
  }

  /** Called by {@link Node#setAttr} when a node of this graph gains a subgraph attribute. */
  void noteSubgraphHolder(Node n) {
    subgraphHolders.add(n);
  }

  /**
   * Removes what nothing reads any more, from {@code candidates} upwards: a candidate that has no
   * use and is not a graph output or input goes (an initializer of this graph, or its producer once
   * none of that node's outputs is read), and then the removed node's inputs are candidates in
   * turn. What something still reads stays. The clean-up after a rewrite replaced a value:
   *
   * <pre>
   *   y = Transpose(Reshape(x, Concat(...)))  =>  y = F(x)     removeUnread([old y]) drops the
   *                                                             Transpose, Reshape and Concat chain
   * </pre>
   */
  public void removeUnread(Collection<Value> candidates) {
    Deque<Value> work = new ArrayDeque<>(candidates);
    while (!work.isEmpty()) {
      Value v = work.pop();
      if (v == null || v.hasUses() || v.isGraphOutput() || v.isGraphInput()) continue;
      if (v.isInitializer()) {
        if (initializer(v.name()).orElse(null) == v) removeInitializer(v);
        continue;
      }
      Node p = v.producer().orElse(null);
      if (p == null || !p.isIn(this)) continue;
      boolean dead = true;
      for (Value o : p.outputs()) dead &= o == null || (!o.hasUses() && !o.isGraphOutput());
      if (!dead) continue;
      List<Value> inputs = List.copyOf(p.inputs());
      removeNode(p);
      work.addAll(inputs);
    }
  }

  /**
   * Removes a node whose outputs nothing reads. Checks first (no uses, not a graph output), then
   * detaches its inputs and drops it.
   */
  public void removeNode(Node n) {
    checkArgument(n.isIn(this), "node '%s' is not in graph '%s'", n.displayName(), name);
    for (Value out : n.outputs()) {
      if (out == null) continue;
      if (out.hasUses()) {
        throw new IllegalStateException(
            "Cannot remove node '"
                + n.displayName()
                + "': its output '"
                + out.name()
                + "' is still used by "
                + out.uses().get(0)
                + ". Rewire its uses first.");
      }
      if (outputs.contains(out)) {
        throw new IllegalStateException(
            "Cannot remove node '"
                + n.displayName()
                + "': its output '"
                + out.name()
                + "' is a graph output. Replace the graph output first.");
      }
    }
    n.detachInputs();
    unlink(n);
    countNodeName(n.rawName(), -1);
    subgraphHolders.remove(n);
    n.setGraph(null);
    for (Value out : n.outputs()) {
      if (out != null) {
        undefine(out);
        valueInfo.remove(out);
      }
    }
  }

  /**
   * Replaces the stored node order with {@code order}, which must be a permutation of the current
   * nodes ({@code analysis.TopologicalOrder.sort} uses it). Checks first, then mutates.
   */
  public void reorder(List<Node> order) {
    checkArgument(
        order.size() == nodeCount,
        "Cannot reorder graph '%s': the new order has %s nodes, the graph has %s. Pass a"
            + " permutation of nodes().",
        name,
        order.size(),
        nodeCount);
    Set<Node> current = Collections.newSetFromMap(new IdentityHashMap<>());
    for (Node n = first; n != null; n = n.next) current.add(n);
    Set<Node> seen = Collections.newSetFromMap(new IdentityHashMap<>());
    for (Node n : order) {
      checkArgument(
          n != null && current.contains(n),
          "Cannot reorder graph '%s': node '%s' is not one of its nodes",
          name,
          n == null ? "null" : n.displayName());
      checkArgument(
          seen.add(n), "Cannot reorder graph '%s': node '%s' appears twice", name, n.displayName());
    }
    first = null;
    last = null;
    nodeCount = 0;
    for (Node n : order) link(null, n);
  }

  /**
   * Lets {@code replacement}, the output of a node that now computes what {@code old} held, take
   * {@code old}'s place: its type, every use (graph outputs included), its value_info listing and,
   * once the nodes in {@code dead} (old's producer among them) are removed, its name. The step
   * every fusion ends with:
   *
   * <pre>
   *   y = Mul(Add(...), ...)     =>   y = Gelu(x)        (the chain removed, Gelu's output named y)
   * </pre>
   */
  public void replaceValue(Value old, Value replacement, List<Node> dead) {
    String oldName = old.name();
    replacement.setTypeOf(old);
    boolean listed = valueInfo().contains(old);
    old.replaceAllUsesWith(replacement, true);
    for (Node n : dead) removeNode(n);
    rename(replacement, oldName);
    if (listed) addValueInfo(replacement);
  }

  /** Renames a value, keeping names unique in scope. */
  public void rename(Value v, String newName) {
    checkArgument(v.isIn(this), "'%s' is not defined in graph '%s'", v.name(), name);
    if (v.name().equals(newName)) return;
    checkArgument(lookup(newName).isEmpty(), "Graph '%s' already has a value '%s'", name, newName);
    byName.remove(v.name());
    boolean init = initializers.remove(v.name()) != null;
    boolean sparse = sparseInitializers.remove(v.name()) != null;
    v.setNameInternal(newName);
    byName.put(newName, v);
    if (init) initializers.put(newName, v);
    if (sparse) sparseInitializers.put(newName, v);
  }

  /** Defines a value under its name in this scope. */
  void define(Value v) {
    checkArgument(!Strings.isNullOrEmpty(v.name()), "a graph value needs a name");
    Value existing = lookup(v.name()).orElse(null);
    checkArgument(
        existing == null || existing == v,
        "Graph '%s' already has a value named '%s'",
        name,
        v.name());
    byName.put(v.name(), v);
    v.setGraph(this);
  }

  private void undefine(Value v) {
    byName.remove(v.name(), v);
    v.setGraph(null);
  }

  /** Every node here and in nested subgraphs, depth first, in stored order. */
  public List<Node> allNodes() {
    List<Node> out = new ArrayList<>();
    collect(out);
    return out;
  }

  private void collect(List<Node> out) {
    for (Node n : nodes()) {
      out.add(n);
      for (Graph g : n.subgraphs()) g.collect(out);
    }
  }

  /** Names of the outer-scope values that nodes here (or deeper) read: the captures. */
  public Set<String> captures() {
    return allNodes().stream()
        .flatMap(n -> n.inputs().stream())
        .filter(v -> v != null && !v.isIn(this) && !(v.isAttached() && isInside(v.graph())))
        .map(Value::name)
        .collect(Collectors.toCollection(LinkedHashSet::new));
  }

  private boolean isInside(Graph g) {
    for (Graph x = g; x != null; x = x.outer()) {
      if (x == this) return true;
    }
    return false;
  }

  /**
   * A deep copy of this top-level graph that shares its immutable tensors (external ones stay
   * unmapped); see {@link Model#copy()}. A subgraph that reads outer values cannot be copied
   * alone: copy the model.
   */
  public Graph copy() {
    return ModelCopier.copy(this);
  }

  void copyFreshCounterFrom(Graph other) {
    this.freshCounter = other.freshCounter;
  }

  @Override
  public String toString() {
    return "Graph(" + name + ", " + nodeCount + " nodes)";
  }
}
