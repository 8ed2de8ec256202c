package dev.graft.trainer.autodiff;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Attr;
import dev.graft.ir.Constants;
import dev.graft.ir.DataType;
import dev.graft.ir.Dim;
import dev.graft.ir.Graph;
import dev.graft.ir.Node;
import dev.graft.ir.Shape;
import dev.graft.ir.Type;
import dev.graft.ir.Use;
import dev.graft.ir.Value;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.function.Function;
import java.util.function.Predicate;

/**
 * What a {@link GradientRule} emits its gradient nodes through: appends standard ONNX nodes
 * (default domain, opset 17 forms) to the graph, named {@code grad/<forward node>/<op>}, and
 * offers the shared pieces rules need: constants of the right element type, static-or-dynamic
 * shapes and, above all, {@link #unbroadcast}, which undoes numpy broadcasting.
 *
 * <p>The driver sets the forward node being differentiated ({@link #forward()}) and which of its
 * inputs need a gradient ({@link #needs(int)}) before it calls a rule.
 */
public final class GradBuilder {
  private final Graph graph;
  private final long opset;
  private Node forward;
  private Predicate<Value> needsGrad = v -> false;
  private String driverLabel;
  private Set<Node> forwardNodes = Set.of();
  private Function<Value, Value> gradients = v -> null;

  GradBuilder(Graph graph, long opset) {
    this.graph = graph;
    this.opset = opset;
  }

  void enter(Node node, Predicate<Value> needs) {
    this.forward = node;
    this.needsGrad = needs;
    this.driverLabel = null;
  }

  /**
   * What the driver knows beyond the current node: the nodes of the forward graph (those there
   * before any gradient node) and the total gradient of each value it has made so far.
   */
  void context(Set<Node> forwardNodes, Function<Value, Value> gradients) {
    this.forwardNodes = forwardNodes;
    this.gradients = gradients;
  }

  /** Nodes the driver itself emits (the seed, fan-out sums) are named grad/<label>/... */
  void enterDriver(String label) {
    enter(null, v -> false);
    this.driverLabel = label;
  }

  public Graph graph() {
    return graph;
  }

  /** The default-domain opset of the model the gradients are for. */
  public long opset() {
    return opset;
  }

  /** The forward node whose rule runs now (null while the driver emits its own nodes). */
  public Node forward() {
    return forward;
  }

  /** Whether input {@code i} of the forward node needs a gradient. */
  public boolean needs(int i) {
    Value v = forward.input(i);
    return v != null && needsGrad.test(v);
  }

  /**
   * The nodes of the forward graph that read {@code v}, without the gradient nodes that read it
   * too; empty when {@code v} is a graph output (something outside reads it).
   */
  public List<Node> forwardReaders(Value v) {
    if (v.isGraphOutput()) return List.of();
    List<Node> out = new ArrayList<>();
    for (Use u : v.uses()) {
      if (forwardNodes.contains(u.node()) && !out.contains(u.node())) out.add(u.node());
    }
    return out;
  }

  /**
   * The total gradient of forward value {@code v} when the driver has already made it (the rules
   * run in reverse topological order, so a value read by the current node's readers has one), else
   * empty. For rules that read a later node's gradient, as attention's softmax does.
   */
  public Optional<Value> gradientOf(Value v) {
    return Optional.ofNullable(gradients.apply(v));
  }

  // ---- failing -------------------------------------------------------------------------------

  /** An error about the current forward node: what, where, and the caller's how-to-fix. */
  public IllegalStateException fail(String what) {
    String where = forward == null ? "" : " (" + forward.opType() + " node '" + forward.displayName() + "')";
    return new IllegalStateException("Cannot differentiate" + where + ": " + what);
  }

  // ---- emitting nodes ------------------------------------------------------------------------

  private String prefix() {
    if (forward == null) return driverLabel == null ? "grad/" : "grad/" + driverLabel + "/";
    String n = forward.name().isEmpty() ? forward.displayName().replace(" -> ", "_") : forward.name();
    return "grad/" + n + "/";
  }

  /** Appends {@code opType(inputs)[attrs]} with {@code outputs} outputs; returns them. */
  public List<Value> ops(String opType, int outputs, List<Value> inputs, Attr... attrs) {
    String base = graph.freshName(prefix() + opType);
    List<String> names = new ArrayList<>();
    for (int i = 0; i < outputs; i++) {
      names.add(i == 0 ? base : graph.freshName(base + "_" + i));
    }
    Node n = new Node("", opType, inputs, names, Arrays.asList(attrs), base);
    graph.addNode(n);
    return n.outputs();
  }

  /** Appends a one-output node. */
  public Value op(String opType, List<Value> inputs, Attr... attrs) {
    return ops(opType, 1, inputs, attrs).get(0);
  }

  public Value op(String opType, Value... inputs) {
    return op(opType, Arrays.asList(inputs));
  }

  /** Sets {@code v}'s type (when known) and returns it. */
  public Value typed(Value v, Type t) {
    if (t != null) v.setType(t);
    return v;
  }

  /** Gives {@code v} the type of {@code like} (same element type and shape) and returns it. */
  public Value typedLike(Value v, Value like) {
    like.type().ifPresent(v::setType);
    return v;
  }

  /** Gives {@code v} the element type of {@code like} and shape {@code s}, when known. */
  public Value typedShape(Value v, Value like, Optional<Shape> s) {
    if (s.isPresent()) v.setType(new Type.TensorType(like.dataType().orElse(null), s, null));
    return v;
  }

  public Value add(Value a, Value b) {
    return op("Add", a, b);
  }

  public Value sub(Value a, Value b) {
    return op("Sub", a, b);
  }

  public Value mul(Value a, Value b) {
    return op("Mul", a, b);
  }

  public Value div(Value a, Value b) {
    return op("Div", a, b);
  }

  public Value neg(Value a) {
    return op("Neg", a);
  }

  public Value matmul(Value a, Value b) {
    return op("MatMul", a, b);
  }

  public Value where(Value cond, Value a, Value b) {
    return op("Where", cond, a, b);
  }

  public Value transpose(Value v, long... perm) {
    return op("Transpose", List.of(v), Attr.ints("perm", perm));
  }

  public Value reshape(Value v, Value shape) {
    return op("Reshape", v, shape);
  }

  /** Reshapes {@code v} to the shape of {@code like} (static when known, else Shape(like)). */
  public Value reshapeLike(Value v, Value like) {
    return typedLike(reshape(v, shapeOf(like)), like);
  }

  public Value reduceSum(Value v, long[] axes, boolean keepDims) {
    return op("ReduceSum", List.of(v, ints(axes)), Attr.of("keepdims", keepDims ? 1L : 0L));
  }

  public Value unsqueeze(Value v, long... axes) {
    return op("Unsqueeze", v, ints(axes));
  }

  public Value squeeze(Value v, long... axes) {
    return op("Squeeze", v, ints(axes));
  }

  public Value cast(Value v, DataType to) {
    return op("Cast", List.of(v), Attr.of("to", (long) to.code()));
  }

  public Value shape(Value v) {
    return op("Shape", v);
  }

  /** Broadcasts {@code v} to the shape of {@code like}. */
  public Value expandLike(Value v, Value like) {
    return typedLike(op("Expand", v, shapeOf(like)), like);
  }

  // ---- constants -----------------------------------------------------------------------------

  public Value constant(Tensor t) {
    Value v = op("Constant", List.of(), Attr.of("value", t));
    v.setType(Type.tensor(t.dataType(), t.shape()));
    return v;
  }

  /** A 1-D int64 constant (axes, shapes, sizes). */
  public Value ints(long... values) {
    return constant(DenseTensor.vector("", values));
  }

  /** A rank-0 int64 constant. */
  public Value intScalar(long value) {
    return constant(DenseTensor.scalar("", value));
  }

  /** A rank-0 constant with the element type of {@code like}. */
  public Value scalar(double value, Value like) {
    DataType dt = like.dataType().orElse(null);
    if (dt == DataType.DOUBLE) return constant(DenseTensor.ofDoubles("", new long[0], value));
    Value f = constant(DenseTensor.scalar("", (float) value));
    if (dt == DataType.FLOAT) return f;
    // Other float types (and unknown ones): let the runtime convert, so rules stay type-agnostic.
    return op("CastLike", f, like);
  }

  /** Zeros shaped and typed like {@code like}. */
  public Value zerosLike(Value like) {
    DataType dt = like.dataType().orElseThrow(() -> fail("the element type of '" + like.name() + "' is unknown; run shape inference first"));
    ByteBuffer zero = ByteBuffer.allocate((int) dt.byteCount(1));
    Tensor t = DenseTensor.ofRaw("", dt, new long[] {1}, zero);
    return typedLike(op("ConstantOfShape", List.of(shapeOf(like)), Attr.of("value", t)), like);
  }

  /** The shape of {@code v} as a 1-D int64 value: a constant when static, else Shape(v). */
  public Value shapeOf(Value v) {
    Optional<long[]> s = v.shape().flatMap(Shape::sizes);
    return s.isPresent() ? ints(s.get()) : shape(v);
  }

  /** Size of axis {@code axis} of {@code v} as a rank-0 int64 value. */
  public Value dimOf(Value v, int axis) {
    Optional<Shape> s = v.shape();
    if (s.isPresent() && axis < s.get().rank() && s.get().dim(axis).isFixed()) {
      return intScalar(s.get().dim(axis).value());
    }
    Value sl = op("Slice", shape(v), ints(axis), ints(axis + 1L));
    return squeeze(sl, 0);
  }

  /** The int values of a constant input (an initializer or a Constant node's output). */
  public static Optional<long[]> constantInts(Value v) {
    return constantTensor(v).map(Tensor::toLongArray);
  }

  /** The data of a constant ({@link Constants#valueOf}: the house's one "constant of" helper). */
  public static Optional<Tensor> constantTensor(Value v) {
    return Constants.valueOf(v);
  }

  /** The rank of {@code v}, or a failure that says why it is needed. */
  public int rank(Value v, String why) {
    return v.shape()
        .map(Shape::rank)
        .orElseThrow(
            () ->
                fail(
                    "the rank of '"
                        + v.name()
                        + "' is unknown, and "
                        + why
                        + ". Run shape inference (ShapeInference.infer) or give the graph input a shape."));
  }

  /** Normalizes a possibly negative axis against {@code rank}. */
  public static long axis(long a, int rank) {
    return a < 0 ? a + rank : a;
  }

  // ---- broadcasting ---------------------------------------------------------------------------

  /**
   * Sums {@code grad} (shaped like {@code gradShape}, usually the forward output) down to the
   * shape of {@code target}: the gradient of a broadcast input.
   *
   * <p>From static shapes it is {@code Reshape(ReduceSum(grad, axes, keepdims=1), shape(target))}
   * over the leading axes and the axes where target has size 1; with no broadcast it is {@code
   * grad} itself. Where shapes cannot decide (unknown ranks, symbolic sizes that may be 1) it
   * finds the axes at run time from Shape(grad) and Shape(target), a handful of tiny int64 ops.
   */
  public Value unbroadcast(Value grad, Optional<Shape> gradShape, Value target) {
    Optional<Shape> ts = target.shape();
    if (ts.isPresent() && gradShape.isPresent()) {
      Shape gs = gradShape.get();
      Shape t = ts.get();
      int rg = gs.rank();
      int rt = t.rank();
      if (rt > rg) {
        throw fail(
            "the gradient "
                + gs
                + " has lower rank than input '"
                + target.name()
                + "' "
                + t
                + ", which broadcasting cannot produce; the shapes in the graph are inconsistent.");
      }
      List<Long> axes = new ArrayList<>();
      boolean decided = true;
      for (int i = 0; i < rg; i++) {
        if (i < rg - rt) {
          axes.add((long) i);
          continue;
        }
        Dim td = t.dim(i - (rg - rt));
        Dim gd = gs.dim(i);
        if (td.isFixed() && td.value() == 1) {
          if (!(gd.isFixed() && gd.value() == 1)) axes.add((long) i);
        } else if (td.isFixed() || (td instanceof Dim.Symbolic && td.equals(gd))) {
          // Not broadcast: a size other than 1, or the same symbol on both sides.
        } else {
          decided = false;
        }
      }
      if (decided) {
        if (axes.isEmpty() && rg == rt) return typedLike(grad, target);
        Value r = axes.isEmpty() ? grad : reduceSum(grad, axes.stream().mapToLong(Long::longValue).toArray(), true);
        if (rg == rt) return typedLike(r, target);
        return reshapeLike(r, target);
      }
    }
    return dynamicUnbroadcast(grad, gradShape, target);
  }

  private Value dynamicUnbroadcast(Value grad, Optional<Shape> gradShape, Value target) {
    Value gs = shape(grad);
    Value xs = shape(target);
    Optional<Integer> rg = gradShape.map(Shape::rank);
    Optional<Integer> rt = target.shape().map(Shape::rank);
    Value ones;
    Value range;
    if (rg.isPresent() && rt.isPresent()) {
      long[] pad = new long[rg.get() - rt.get()];
      Arrays.fill(pad, 1);
      ones = ints(pad);
      range = ints(axesFrom(0, rg.get()));
    } else {
      Value rankG = op("Size", gs);
      Value pad = op("Sub", rankG, op("Size", xs));
      Tensor one = DenseTensor.vector("", 1L);
      ones = op("ConstantOfShape", List.of(unsqueeze(pad, 0)), Attr.of("value", one));
      range = op("Range", intScalar(0), rankG, intScalar(1));
    }
    Value padded = op("Concat", List.of(ones, xs), Attr.of("axis", 0L));
    Value mask = op("Not", op("Equal", padded, gs));
    Value axes = op("Compress", List.of(range, mask), Attr.of("axis", 0L));
    Value r =
        op(
            "ReduceSum",
            List.of(grad, axes),
            Attr.of("keepdims", 1L),
            Attr.of("noop_with_empty_axes", 1L));
    return typedLike(reshape(r, xs), target);
  }

  /** {@link #unbroadcast} with the gradient shaped like forward value {@code like}. */
  public Value unbroadcast(Value grad, Value like, Value target) {
    return unbroadcast(grad, like.shape(), target);
  }

  /** Element count of axes {@code axes} of {@code v}, as a rank-0 value of {@code like}'s type. */
  public Value countOf(Value v, long[] axes, Value like) {
    Optional<Shape> s = v.shape();
    if (s.isPresent()) {
      long n = 1;
      boolean known = true;
      for (long a : axes) {
        Dim d = s.get().dim((int) a);
        if (!d.isFixed()) {
          known = false;
          break;
        }
        n *= d.value();
      }
      if (known) return scalar(n, like);
    }
    Value dims = op("Gather", List.of(shape(v), ints(axes)), Attr.of("axis", 0L));
    Value n = op("ReduceProd", List.of(dims), Attr.of("keepdims", 0L));
    return op("CastLike", n, like);
  }

  /** All axes {@code [from, rank)}. */
  public static long[] axesFrom(long from, int rank) {
    long[] a = new long[(int) (rank - from)];
    for (int i = 0; i < a.length; i++) a[i] = from + i;
    return a;
  }

  /** Results helper: one Optional per forward input. */
  @SafeVarargs
  public static List<Optional<Value>> grads(Optional<Value>... perInput) {
    ImmutableList.Builder<Optional<Value>> out = ImmutableList.builder();
    for (Optional<Value> g : perInput) out.add(g);
    return out.build();
  }

  public static Optional<Value> some(Value v) {
    return Optional.of(v);
  }

  public static Optional<Value> none() {
    return Optional.empty();
  }
}
