package dev.graft.ir.build;

import static com.google.common.base.Preconditions.checkArgument;
import static com.google.common.base.Preconditions.checkState;

import com.google.common.base.Strings;
import com.google.common.collect.ImmutableList;
import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Dim;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Shape;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * Makes graphs in code, or appends nodes to an existing graph (autodiff, rewriters).
 *
 * <pre>{@code
 * GraphBuilder b = GraphBuilder.create("mlp");
 * Value x = b.input("x", DataType.FLOAT, "batch", 2);
 * Value w = b.floats(new long[] {2, 3}, 1, 2, 3, 4, 5, 6);
 * b.prefix("/fc1");
 * Value y = b.op("Relu", b.op("MatMul", x, w));   // nodes /fc1/MatMul, /fc1/Relu
 * b.output("y", y);
 * Model m = b.model(17);
 * }</pre>
 *
 * <p>Names follow PyTorch's exporter: a node made under prefix {@code /encoder/layer.0/query} is
 * called {@code /encoder/layer.0/query/MatMul} and its outputs {@code
 * /encoder/layer.0/query/MatMul_output_0}, ...; when that node name is taken, {@code MatMul_1}
 * and so on. Names are unique among the graph's values (including nested and enclosing scopes)
 * and among the node names the builder has seen, so appending to a loaded model never collides
 * with its names.
 *
 * <p>New nodes go at the end of the graph, or just before {@link #before(Node) an anchor}, in the
 * order they are made; the builder never reorders existing nodes. Output values carry no type:
 * shape inference fills them in.
 */
public final class GraphBuilder {
  private static final String PRODUCER = "graft-fixtures";

  private final Graph graph;
  /** Non-default domains the builder made nodes in, so {@link #model} can import them. */
  private final Set<String> domains = new LinkedHashSet<>();

  private Node anchor;
  private String prefix = "";
  private Node lastNode;

  private GraphBuilder(Graph graph) {
    this.graph = graph;
  }

  /** A builder of a new, empty graph. */
  public static GraphBuilder create(String graphName) {
    return new GraphBuilder(new Graph(graphName));
  }

  /** A builder that appends to {@code g}. */
  public static GraphBuilder on(Graph g) {
    checkArgument(g != null, "GraphBuilder.on needs a graph, got null");
    return new GraphBuilder(g);
  }

  public Graph graph() {
    return graph;
  }

  // ---- where and how new nodes are named ------------------------------------------------------

  /** New nodes go just before {@code anchor}, in the order they are made. */
  public GraphBuilder before(Node anchor) {
    checkArgument(
        anchor.isIn(graph),
        "Cannot insert before node '%s': it is not in graph '%s'",
        anchor.displayName(),
        graph.name());
    this.anchor = anchor;
    return this;
  }

  /** New nodes go at the end of the graph again. */
  public GraphBuilder atEnd() {
    this.anchor = null;
    return this;
  }

  /**
   * The naming scope of the following nodes, as the exporter writes module paths: {@code
   * "/encoder/layer.0/attention/self/query"}. "" (the default) names nodes {@code /MatMul}.
   */
  public GraphBuilder prefix(String p) {
    String s = Strings.nullToEmpty(p);
    while (s.endsWith("/")) s = s.substring(0, s.length() - 1);
    this.prefix = s;
    return this;
  }

  public String prefix() {
    return prefix;
  }

  /** The node the builder made last; throws before the first one. */
  public Node lastNode() {
    checkState(lastNode != null, "GraphBuilder on '%s' has made no node yet", graph.name());
    return lastNode;
  }

  // ---- inputs and constants -------------------------------------------------------------------

  /**
   * Adds a graph input; {@code dims} are Long or Integer (fixed sizes) or String (symbolic
   * sizes, e.g. "batch"), or null for an unknown size.
   */
  public Value input(String name, DataType t, Object... dims) {
    return graph.addInput(name, Type.tensor(t, shapeOf(dims)));
  }

  /** Adds an initializer called {@code name}; the tensor is renamed to match. */
  public Value initializer(String name, Tensor t) {
    Tensor named = name.equals(t.name()) ? t : t.withName(name);
    return graph.addInitializer(name, named);
  }

  /**
   * Adds an initializer under a fresh name: the tensor's name if it has one and it is free,
   * otherwise one derived from the prefix, like the exporter's anonymous {@code onnx::} names.
   */
  public Value constant(Tensor t) {
    String base = Strings.isNullOrEmpty(t.name()) ? scoped("Constant") + "_value" : t.name();
    String name = base;
    for (int k = 1; !isFreeValueName(name); k++) name = base + "_" + k;
    return initializer(name, t);
  }

  /** A rank-0 float initializer. */
  public Value scalar(float v) {
    return constant(DenseTensor.scalar(null, v));
  }

  /** A rank-0 int64 initializer. */
  public Value scalar(long v) {
    return constant(DenseTensor.scalar(null, v));
  }

  /** A 1-D int64 initializer, the usual form of shapes and axes. */
  public Value int64s(long... values) {
    return constant(DenseTensor.vector(null, values));
  }

  /** A float initializer of the given dims. */
  public Value floats(long[] dims, float... values) {
    long n = Arrays.stream(dims).reduce(1L, Math::multiplyExact);
    checkArgument(
        n == values.length,
        "floats(%s, ...) needs %s values, got %s",
        Arrays.toString(dims),
        n,
        values.length);
    return constant(DenseTensor.ofFloats(null, dims, values));
  }

  /** A Constant node holding {@code t}, the way exporters often store small constants. */
  public Value constantNode(Tensor t) {
    return op("Constant", List.of(), Attr.of("value", t.withName(null)));
  }

  // ---- nodes ------------------------------------------------------------------------------------

  /** A default-domain node with one output. Null inputs are omitted optional inputs. */
  public Value op(String opType, Value... inputs) {
    return op(opType, Arrays.asList(inputs));
  }

  public Value op(String opType, List<Value> inputs, Attr... attrs) {
    return node("", opType, 1, inputs, attrs).output();
  }

  /** A default-domain node with {@code numOutputs} outputs (Split, TopK, LayerNormalization...). */
  public List<Value> ops(String opType, int numOutputs, List<Value> inputs, Attr... attrs) {
    return node("", opType, numOutputs, inputs, attrs).outputs();
  }

  /** A one-output node in {@code domain} (e.g. "com.microsoft"); {@link #model} imports it. */
  public Value opIn(String domain, String opType, List<Value> inputs, Attr... attrs) {
    return node(domain, opType, 1, inputs, attrs).output();
  }

  /** Makes, names and places a node; returns it (also as {@link #lastNode()}). */
  public Node node(String domain, String opType, int numOutputs, List<Value> inputs, Attr... attrs) {
    checkArgument(numOutputs >= 1, "%s needs at least one output, got %s", opType, numOutputs);
    for (int i = 0; i < inputs.size(); i++) {
      Value v = inputs.get(i);
      checkArgument(
          v == null || graph.lookup(v.name()).orElse(null) == v,
          "Input %s of the new %s node is '%s', which is not a value of graph '%s' or an"
              + " enclosing graph. Add it to the graph first (input, initializer or a node).",
          i,
          opType,
          v == null ? null : v.name(),
          graph.name());
    }
    String name = freshNodeName(scoped(opType), numOutputs);
    List<String> outputNames = new ArrayList<>(numOutputs);
    for (int i = 0; i < numOutputs; i++) outputNames.add(outputName(name, i));
    String dom = Strings.isNullOrEmpty(domain) ? null : domain;
    Node n = new Node(dom, opType, inputs, outputNames, Arrays.asList(attrs), name);
    if (anchor != null) {
      checkState(
          anchor.isIn(graph),
          "The insertion point '%s' was removed from graph '%s'. Call atEnd() or before(...).",
          anchor.displayName(),
          graph.name());
      graph.insertBefore(anchor, n);
    } else {
      graph.addNode(n);
    }
    if (dom != null && !dom.equals("ai.onnx")) domains.add(dom);
    lastNode = n;
    return n;
  }

  // ---- outputs and the model ------------------------------------------------------------------

  /** Adds {@code v} as a graph output under its current name. */
  public void output(Value v) {
    graph.addOutput(v);
  }

  /**
   * Adds a graph output called {@code name}: renames {@code v} when a node of this graph makes it
   * and it is not an output already, otherwise adds an Identity node of that name.
   */
  public Value output(String name, Value v) {
    Value out = v;
    if (!v.name().equals(name)) {
      boolean renamable = v.producer().isPresent() && v.isIn(graph) && !v.isGraphOutput();
      if (renamable) {
        graph.rename(v, name);
      } else {
        Node id = node("", "Identity", 1, List.of(v));
        graph.rename(id.output(), name);
        out = id.output();
      }
    }
    graph.addOutput(out);
    return out;
  }

  /** Sets the type of {@code v} (for graph outputs, whose type the model should state). */
  public Value typed(Value v, DataType t, Object... dims) {
    v.setType(Type.tensor(t, shapeOf(dims)));
    return v;
  }

  /**
   * Wraps the graph in a model: IR version 8 up to opset 17, 10 after it; the default domain at
   * {@code opset}; version 1 of every other domain the builder used; producer "graft-fixtures".
   */
  public Model model(long opset) {
    Model m = new Model(graph);
    m.setIrVersion(opset <= 17 ? 8L : 10L);
    m.setOpset("", opset);
    for (String d : domains) m.setOpset(d, 1);
    m.setProducerName(PRODUCER);
    return m;
  }

  // ---- naming -----------------------------------------------------------------------------------

  private String scoped(String opType) {
    return prefix + "/" + opType;
  }

  private static String outputName(String nodeName, int i) {
    return nodeName + "_output_" + i;
  }

  private String freshNodeName(String base, int numOutputs) {
    String candidate = base;
    for (int k = 1; !isFree(candidate, numOutputs); k++) {
      candidate = base + "_" + k;
    }
    return candidate;
  }

  private boolean isFree(String nodeName, int numOutputs) {
    if (graph.nodeNameUsed(nodeName)) return false;
    for (int i = 0; i < numOutputs; i++) {
      if (!isFreeValueName(outputName(nodeName, i))) return false;
    }
    return true;
  }

  /**
   * Whether no value in scope (here, around or below) has this name. The cheap scope lookup runs
   * first so that {@link Graph#freshName}, which also searches subgraphs, is asked only about
   * names likely free, and then returns them unchanged: names stay base, base_1, base_2, ...
   */
  private boolean isFreeValueName(String name) {
    return graph.lookup(name).isEmpty() && graph.freshName(name).equals(name);
  }

  private static Shape shapeOf(Object... dims) {
    List<Dim> out = new ArrayList<>(dims.length);
    for (Object d : dims) {
      if (d == null) {
        out.add(Dim.unknown());
      } else if (d instanceof String s) {
        out.add(Dim.of(s));
      } else if (d instanceof Long || d instanceof Integer) {
        out.add(Dim.of(((Number) d).longValue()));
      } else if (d instanceof Dim dim) {
        out.add(dim);
      } else {
        throw new IllegalArgumentException(
            "A dim is a Long or Integer (fixed), a String (symbolic) or null (unknown); got "
                + d.getClass().getSimpleName()
                + " "
                + d);
      }
    }
    return Shape.of(ImmutableList.copyOf(out));
  }
}
