package dev.graft.ir;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * A named value in a graph: a graph input, an initializer, or an output of exactly one node.
 *
 * <p>Invariants: a value has at most one producer, fixed when its node creates it; its use list
 * is edited only by {@link Node} methods, so it always lists exactly the (node, input index) pairs
 * that read it; {@link #uses()} returns a snapshot that stays valid while you rewire. A value
 * produced by a node is named once it joins a graph, and names are unique in a graph's scope
 * (renames go through {@link Graph#rename}).
 */
public final class Value {
  private String name;
  private Type type;
  private String docString;
  private byte[] extras = new byte[0];
  private final Node producer;
  private final int producerIndex;
  private Graph graph;
  private Tensor initializer;
  private byte[] sparseInitializer;
  private final List<Use> uses = new ArrayList<>();

  /** A value no node produces: a graph input or initializer. Add it to a graph to use it. */
  public Value(String name, Type type) {
    this(name, type, null, -1);
  }

  Value(String name, Type type, Node producer, int producerIndex) {
    this.name = name;
    this.type = type;
    this.producer = producer;
    this.producerIndex = producerIndex;
  }

  public String name() {
    return name;
  }

  void setNameInternal(String name) {
    this.name = name;
  }

  /**
   * The type; empty when nothing is known. Most callers want {@link #tensorType()}, {@link
   * #dataType()} or {@link #shape()}.
   */
  public Optional<Type> type() {
    return Optional.ofNullable(type);
  }

  /** Sets the type; null makes it unknown again. */
  public void setType(Type type) {
    this.type = type;
  }

  /** Gives this value {@code other}'s type, or makes it unknown when {@code other}'s is. */
  public void setTypeOf(Value other) {
    this.type = other.type;
  }

  /** The tensor type, if the type is a tensor type. */
  public Optional<Type.TensorType> tensorType() {
    return type instanceof Type.TensorType t ? Optional.of(t) : Optional.empty();
  }

  /** The element type if known. */
  public Optional<DataType> dataType() {
    return tensorType().map(Type.TensorType::elementType);
  }

  /** The shape if the rank is known. */
  public Optional<Shape> shape() {
    return tensorType().flatMap(Type.TensorType::shape);
  }

  public String docString() {
    return docString;
  }

  public void setDocString(String docString) {
    this.docString = docString;
  }

  /** Unmodelled ValueInfoProto fields (metadata, unknown fields), opaque outside io. */
  public byte[] extras() {
    return extras.clone();
  }

  public void setExtras(byte[] extras) {
    this.extras = extras == null ? new byte[0] : extras.clone();
  }

  public Optional<Node> producer() {
    return Optional.ofNullable(producer);
  }

  /** Which output of its producer this value is; -1 for a value no node produces. */
  public int producerIndex() {
    return producerIndex;
  }

  /**
   * The graph whose scope defines this value. A value belongs to none before it is added (or its
   * producer is) and once it is removed; asking then is a mistake, refused in one line. {@link
   * #isAttached()} and {@link #isIn(Graph)} ask without failing.
   */
  public Graph graph() {
    if (graph == null) {
      throw new IllegalStateException(
          "Value '" + name + "' belongs to no graph: it was removed, or not added yet. Ask isAttached() or isIn(graph) first.");
    }
    return graph;
  }

  /** Whether a graph's scope defines this value. */
  public boolean isAttached() {
    return graph != null;
  }

  /** Whether {@code g}'s own scope defines this value. */
  public boolean isIn(Graph g) {
    return graph != null && graph == g;
  }

  void setGraph(Graph graph) {
    this.graph = graph;
  }

  /** The constant data if this value is an initializer. */
  public Optional<Tensor> initializer() {
    return Optional.ofNullable(initializer);
  }

  public boolean isInitializer() {
    return initializer != null;
  }

  void setInitializerInternal(Tensor t) {
    this.initializer = t;
  }

  /** The serialized SparseTensorProto when this value is a sparse initializer; opaque. */
  public byte[] sparseInitializer() {
    return sparseInitializer;
  }

  void setSparseInitializerInternal(byte[] b) {
    this.sparseInitializer = b;
  }

  public boolean isGraphInput() {
    return graph != null && graph.inputs().contains(this);
  }

  public boolean isGraphOutput() {
    return graph != null && graph.outputs().contains(this);
  }

  /** A snapshot of the uses: safe to iterate while rewiring. */
  public ImmutableList<Use> uses() {
    return ImmutableList.copyOf(uses);
  }

  public boolean hasUses() {
    return !uses.isEmpty();
  }

  /**
   * The node that alone reads this value, once, when it is not a graph output: what a fusion may
   * fold the value into without anyone else missing it.
   */
  public Optional<Node> soleReader() {
    return uses.size() == 1 && !isGraphOutput() ? Optional.of(uses.get(0).node()) : Optional.empty();
  }

  void addUse(Use use) {
    uses.add(use);
  }

  void removeUse(Use use) {
    boolean removed = uses.remove(use);
    assert removed : "use " + use + " not recorded on value " + name;
  }

  /**
   * Makes every node that reads this value read {@code other} instead. Graph outputs that are
   * this value are replaced too when {@code alsoGraphOutputs}; otherwise they keep this value.
   *
   * <pre>
   *   a = P(x); b = F(a); c = G(a)      a.replaceAllUsesWith(z)     b = F(z); c = G(z); a unused
   * </pre>
   */
  public void replaceAllUsesWith(Value other, boolean alsoGraphOutputs) {
    if (other == this) {
      return;
    }
    for (Use u : uses()) {
      u.node().setInput(u.index(), other);
    }
    if (alsoGraphOutputs && graph != null) {
      graph.replaceOutput(this, other);
    }
  }

  /** Replaces every use by a node; graph outputs keep this value. */
  public void replaceAllUsesWith(Value other) {
    replaceAllUsesWith(other, false);
  }

  @Override
  public String toString() {
    return "%" + name + (type == null ? "" : ":" + type);
  }
}
