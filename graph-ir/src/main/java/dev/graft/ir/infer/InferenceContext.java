package dev.graft.ir.infer;

import dev.graft.ir.DataType;
import dev.graft.ir.Graph;
import dev.graft.ir.Node;
import dev.graft.ir.Shape;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import java.util.Arrays;
import java.util.Optional;

/**
 * One node as a {@link ShapeRule} sees it: what is known about its inputs, and the one way to
 * record what follows for its outputs. Every output type goes through {@link #setOutput}, which
 * merges with what the value already declared and reports contradictions with the node's name.
 */
public final class InferenceContext {
  private final Node node;
  private final ShapeInference run;

  InferenceContext(Node node, ShapeInference run) {
    this.node = node;
    this.run = run;
  }

  public Node node() {
    return node;
  }

  /** The default-domain opset the graph follows. */
  public long opset() {
    return run.opset();
  }

  // ---- inputs ----------------------------------------------------------------------------------

  public int inputCount() {
    return node.inputs().size();
  }

  /** True when input {@code i} exists and is not omitted. */
  public boolean hasInput(int i) {
    return i < node.inputs().size() && node.input(i) != null;
  }

  public Value input(int i) {
    return hasInput(i) ? node.input(i) : null;
  }

  public Optional<Type.TensorType> inputType(int i) {
    return hasInput(i) ? node.input(i).tensorType() : Optional.empty();
  }

  public Optional<DataType> elemType(int i) {
    return inputType(i).map(Type.TensorType::elementType);
  }

  /** The element type of input i, or null when unknown: most rules pass it straight on. */
  public DataType elemOrNull(int i) {
    return elemType(i).orElse(null);
  }

  public Optional<Shape> shape(int i) {
    return inputType(i).flatMap(Type.TensorType::shape);
  }

  /** The known contents of input {@code i} (a small integer tensor), symbols included. */
  public Optional<SymbolicTensor> contents(int i) {
    return hasInput(i) ? run.contents(node.input(i)) : Optional.empty();
  }

  /** The contents of input {@code i} when every element is a fixed number. */
  public Optional<long[]> ints(int i) {
    return contents(i).flatMap(SymbolicTensor::longs);
  }

  /**
   * Axes, sizes or pads given as an INTS attribute before {@code inputSince} and as input
   * {@code input} from that opset on. Empty when absent or not constant; {@link #hasInput} and
   * {@code node().hasAttr} tell the two apart.
   */
  public Optional<long[]> intsAttrOrInput(String attr, int input, long inputSince) {
    return opset() < inputSince ? node.attrLongs(attr) : ints(input);
  }

  // ---- attributes --------------------------------------------------------------------------------

  public long attrLong(String name, long dflt) {
    return node.attrLong(name, dflt);
  }

  public String attrString(String name, String dflt) {
    return node.attrString(name, dflt);
  }

  public Optional<long[]> attrLongs(String name) {
    return node.attrLongs(name);
  }

  // ---- outputs -----------------------------------------------------------------------------------

  public int outputCount() {
    return node.outputs().size();
  }

  public boolean hasOutput(int i) {
    return i < node.outputs().size() && node.output(i) != null;
  }

  /**
   * Records output {@code i}'s type: element type and shape, either may be null (unknown). Merged
   * with the value's existing type, keeping the more specific of each part.
   */
  public void setOutput(int i, DataType elem, Shape shape) {
    if (!hasOutput(i) || (elem == null && shape == null)) return;
    run.assign(node, node.output(i), new Type.TensorType(elem, Optional.ofNullable(shape), null));
  }

  /** Records a type of any kind (sequence, optional: the types subgraphs pass through). */
  public void setOutputType(int i, Type type) {
    if (!hasOutput(i) || type == null) return;
    run.assign(node, node.output(i), type);
  }

  /** Records the known contents of output {@code i}; its type follows from them if unknown. */
  public void setContents(int i, SymbolicTensor contents) {
    if (!hasOutput(i) || contents == null || contents.size() > SymbolicTensor.MAX_ELEMENTS) return;
    run.putContents(node.output(i), contents);
  }

  // ---- helpers -----------------------------------------------------------------------------------

  /** Types the subgraph's values, as a control-flow rule does after typing the subgraph inputs. */
  public void inferSubgraph(Graph g) {
    run.inferGraph(g);
  }

  /** Types a subgraph input (a Loop or Scan body's parameter), merged with what it declares. */
  public void setSubgraphInput(Value input, Type type) {
    if (type != null) run.assign(node, input, type);
  }

  /** {@code axis} made non-negative for {@code rank}; an error naming the node when out of range. */
  public int axis(long axis, int rank) {
    long a = axis < 0 ? axis + rank : axis;
    if (a < 0 || a >= rank) {
      throw error("axis %s is out of range for rank %s", axis, rank);
    }
    return (int) a;
  }

  public int[] axes(long[] axes, int rank) {
    return Arrays.stream(axes).mapToInt(a -> axis(a, rank)).toArray();
  }

  /** An error that names this node, its op and the problem; throw it. */
  public ShapeInferenceException error(String format, Object... args) {
    return new ShapeInferenceException(
        "Shape inference failed at node '"
            + node.displayName()
            + "' ("
            + node.opType()
            + "): "
            + String.format(format, args)
            + ". Check the node's inputs and attributes.");
  }
}
