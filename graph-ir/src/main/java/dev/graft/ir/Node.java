package dev.graft.ir;

import static com.google.common.base.Preconditions.checkArgument;
import static com.google.common.base.Preconditions.checkElementIndex;

import com.google.common.base.Strings;
import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMap;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * An operator application: {@code outputs = opType[attributes](inputs)}.
 *
 * <p>Invariants: a node creates its outputs and never reassigns them, so each output value has
 * this node as its one producer; every input edge change goes through {@link #setInput}, which
 * keeps the use lists of the old and new value exact. An input slot may be null (an omitted
 * optional input, written as "" in ONNX); so may an output slot. A node belongs to at most one
 * graph, which {@link Graph} methods set.
 *
 * <p>Name, domain, overload and doc string are null when absent, which ONNX distinguishes from
 * empty for lossless saves; {@link #name()} and {@link #domain()} read them as "".
 */
public final class Node {
  private String name;
  private String domain;
  private final String opType;
  private String overload;
  private String docString;
  private byte[] extras = new byte[0];
  private final List<Value> inputs = new ArrayList<>();
  private final List<Value> outputs;
  private final LinkedHashMap<String, Attr> attributes = new LinkedHashMap<>();
  private Graph graph;
  /** Neighbours in the graph's node list, which only {@link Graph} links. */
  Node prev;

  Node next;

  /**
   * Makes a node and its outputs. {@code outputNames} entries that are null or empty make omitted
   * outputs. The node reads its inputs at once: each input's use list gains this node.
   */
  public Node(
      String domain,
      String opType,
      List<Value> inputs,
      List<String> outputNames,
      List<Attr> attributes,
      String name) {
    checkArgument(!Strings.isNullOrEmpty(opType), "a node needs an op type");
    this.domain = domain;
    this.opType = opType;
    this.name = name;
    List<Value> outs = new ArrayList<>(outputNames.size());
    for (int i = 0; i < outputNames.size(); i++) {
      String n = outputNames.get(i);
      outs.add(Strings.isNullOrEmpty(n) ? null : new Value(n, null, this, i));
    }
    this.outputs = Collections.unmodifiableList(outs);
    for (Value v : inputs) {
      appendInput(v);
    }
    for (Attr a : attributes) {
      setAttr(a);
    }
  }

  /** "" for the default ONNX domain (also spelled "ai.onnx"), else the domain. */
  public String domain() {
    return domain == null || domain.equals("ai.onnx") ? "" : domain;
  }

  /** The domain exactly as stored, null when absent. */
  public String rawDomain() {
    return domain;
  }

  public String opType() {
    return opType;
  }

  /** True for {@code opType} in the default ONNX domain. */
  public boolean is(String op) {
    return opType.equals(op) && domain().isEmpty();
  }

  /** The name, "" when absent. */
  public String name() {
    return Strings.nullToEmpty(name);
  }

  /** The name exactly as stored, null when absent. */
  public String rawName() {
    return name;
  }

  public void setName(String name) {
    if (graph != null) graph.nodeRenamed(this.name, name);
    this.name = name;
  }

  /** A name for messages: the node's name, or its op type and first output. */
  public String displayName() {
    if (!Strings.isNullOrEmpty(name)) return name;
    Value out = outputs.stream().filter(v -> v != null).findFirst().orElse(null);
    return opType + (out == null ? "" : " -> " + out.name());
  }

  public String overload() {
    return overload;
  }

  public void setOverload(String overload) {
    this.overload = overload;
  }

  public String docString() {
    return docString;
  }

  public void setDocString(String docString) {
    this.docString = docString;
  }

  /** Unmodelled NodeProto fields (metadata, device configurations, unknown fields). */
  public byte[] extras() {
    return extras.clone();
  }

  public void setExtras(byte[] extras) {
    this.extras = extras == null ? new byte[0] : extras.clone();
  }

  /**
   * The graph that holds this node. A node is in no graph before it is added and once it is
   * removed; asking then is a mistake, refused in one line. {@link #isAttached()} and {@link
   * #isIn(Graph)} ask without failing.
   */
  public Graph graph() {
    if (graph == null) {
      throw new IllegalStateException(
          "Node '" + displayName() + "' is in no graph: it was removed, or not added yet. Ask isAttached() or isIn(graph) first.");
    }
    return graph;
  }

  /** Whether a graph holds this node (false before it is added and once it is removed). */
  public boolean isAttached() {
    return graph != null;
  }

  /** Whether {@code g} holds this node. */
  public boolean isIn(Graph g) {
    return graph != null && graph == g;
  }

  void setGraph(Graph g) {
    this.graph = g;
  }

  // ---- inputs --------------------------------------------------------------------------------

  /** A snapshot of the inputs; entries are null for omitted optional inputs. */
  public List<Value> inputs() {
    return Collections.unmodifiableList(new ArrayList<>(inputs));
  }

  public int inputCount() {
    return inputs.size();
  }

  /**
   * Input {@code i}, or null when it is omitted (ONNX's empty name for an optional input) or past
   * the end: the one place the package answers null for a query, since the slot's position
   * means something (see package-info). {@link #hasInput} asks without a null check.
   */
  public Value input(int i) {
    return i < inputs.size() ? inputs.get(i) : null;
  }

  /** Whether input {@code i} is present. */
  public boolean hasInput(int i) {
    return input(i) != null;
  }

  /** Rewires input {@code i} to read {@code value} (null to omit it); use lists follow. */
  public void setInput(int i, Value value) {
    checkElementIndex(i, inputs.size(), "input index of node '" + displayName() + "'");
    Value old = inputs.get(i);
    if (old == value) return;
    if (old != null) old.removeUse(new Use(this, i));
    inputs.set(i, value);
    if (value != null) value.addUse(new Use(this, i));
  }

  /** Adds an input at the end. */
  public void appendInput(Value value) {
    inputs.add(value);
    if (value != null) value.addUse(new Use(this, inputs.size() - 1));
  }

  /** Replaces the whole input list. */
  public void setInputs(List<Value> values) {
    detachInputs();
    for (Value v : values) appendInput(v);
  }

  /** Drops trailing inputs past {@code count}. */
  public void truncateInputs(int count) {
    while (inputs.size() > count) {
      int i = inputs.size() - 1;
      Value v = inputs.remove(i);
      if (v != null) v.removeUse(new Use(this, i));
    }
  }

  /** Removes this node from the use lists of all its inputs, leaving it with none. */
  void detachInputs() {
    truncateInputs(0);
  }

  // ---- outputs -------------------------------------------------------------------------------

  /** The outputs; null entries are omitted outputs. Fixed for the node's life. */
  public List<Value> outputs() {
    return outputs;
  }

  public Value output(int i) {
    return outputs.get(i);
  }

  /** The first output, the one most ops have. */
  public Value output() {
    return outputs.get(0);
  }

  // ---- attributes ----------------------------------------------------------------------------

  public ImmutableMap<String, Attr> attributes() {
    return ImmutableMap.copyOf(attributes);
  }

  public Optional<Attr> attr(String name) {
    return Optional.ofNullable(attributes.get(name));
  }

  public boolean hasAttr(String name) {
    return attributes.containsKey(name);
  }

  public long attrLong(String name, long dflt) {
    Attr a = attributes.get(name);
    return a == null || a.isReference() ? dflt : a.asLong();
  }

  public float attrFloat(String name, float dflt) {
    Attr a = attributes.get(name);
    return a == null || a.isReference() ? dflt : a.asFloat();
  }

  public String attrString(String name, String dflt) {
    Attr a = attributes.get(name);
    return a == null || a.isReference() ? dflt : a.asString();
  }

  /** An INTS attribute, or empty when it is absent. */
  public Optional<long[]> attrLongs(String name) {
    Attr a = attributes.get(name);
    return a == null || a.isReference() ? Optional.empty() : Optional.of(a.asLongs());
  }

  /** Sets (or replaces) an attribute; a graph attribute's subgraphs get this node as parent. */
  public void setAttr(Attr attr) {
    Attr old = attributes.put(attr.name(), attr);
    if (old != null) {
      for (Graph g : old.subgraphs()) g.setParentNode(null);
    }
    for (Graph g : attr.subgraphs()) {
      g.setParentNode(this);
    }
    if (graph != null && !attr.subgraphs().isEmpty()) graph.noteSubgraphHolder(this);
  }

  public void removeAttr(String name) {
    Attr old = attributes.remove(name);
    if (old != null) {
      for (Graph g : old.subgraphs()) g.setParentNode(null);
    }
  }

  /** The subgraphs of this node's attributes, in attribute order. */
  public List<Graph> subgraphs() {
    ImmutableList.Builder<Graph> b = ImmutableList.builder();
    for (Attr a : attributes.values()) b.addAll(a.subgraphs());
    return b.build();
  }

  /** Attribute map, in order, for io. */
  public Map<String, Attr> attributeMap() {
    return Collections.unmodifiableMap(attributes);
  }

  @Override
  public String toString() {
    return displayName();
  }
}
