package dev.graft.ir.infer;

import dev.graft.ir.DataType;
import dev.graft.ir.Dim;
import dev.graft.ir.Shape;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.function.BinaryOperator;
import java.util.function.UnaryOperator;

/**
 * Elementwise ops: unary ops keep their input's type; binary and variadic ops broadcast their
 * inputs (numpy rules, symbols included); comparisons and logic give bool. Integer arithmetic on
 * known contents is folded so that shape computations stay known.
 */
final class ElementwiseRules {
  private ElementwiseRules() {}

  /** {@code y = f(x)}, same type and shape. */
  static void unary(InferenceContext c) {
    c.setOutput(0, c.elemOrNull(0), c.shape(0).orElse(null));
  }

  /** Unary with the contents mapped too ({@code Identity}, {@code Neg}, {@code Abs}, ...). */
  static ShapeRule unaryFolding(UnaryOperator<Dim> f) {
    return c -> {
      unary(c);
      c.contents(0).ifPresent(t -> c.setContents(0, map(t, f)));
    };
  }

  /** Unary with a bool result ({@code Not}, {@code IsNaN}, {@code IsInf}). */
  static void unaryToBool(InferenceContext c) {
    c.setOutput(0, DataType.BOOL, c.shape(0).orElse(null));
    if (c.node().is("Not")) {
      c.contents(0).ifPresent(t -> c.setContents(0, map(t, d -> d instanceof Dim.Fixed f ? Dim.of(f.size() == 0 ? 1 : 0) : Dim.unknown())));
    }
  }

  /** {@code Dropout}: y like x, the optional mask bool of the same shape. */
  static void dropout(InferenceContext c) {
    unary(c);
    c.setOutput(1, DataType.BOOL, c.shape(0).orElse(null));
  }

  /** {@code Clip}: like input 0 (min and max are scalars). */
  static void clip(InferenceContext c) {
    unary(c);
  }

  /** Broadcasting ops whose result has the first input's element type, folding with {@code op}. */
  static ShapeRule broadcasting(BinaryOperator<Dim> op) {
    return c -> broadcast(c, c.elemOrNull(0), op);
  }

  /** Broadcasting ops with a bool result: comparisons and logic. */
  static ShapeRule comparing(BinaryOperator<Dim> op) {
    return c -> broadcast(c, DataType.BOOL, op);
  }

  private static void broadcast(InferenceContext c, DataType elem, BinaryOperator<Dim> op) {
    List<Integer> present = new ArrayList<>();
    for (int i = 0; i < c.inputCount(); i++) if (c.hasInput(i)) present.add(i);
    c.setOutput(0, elem, broadcastShapes(c, present).orElse(null));
    if (op == null || present.isEmpty()) return;
    Optional<SymbolicTensor> acc = c.contents(present.get(0));
    for (int k = 1; k < present.size() && acc.isPresent(); k++) {
      Optional<SymbolicTensor> next = c.contents(present.get(k));
      acc = next.isEmpty() ? Optional.empty() : SymbolicTensor.zip(acc.get(), next.get(), op);
    }
    acc.ifPresent(t -> c.setContents(0, t));
  }

  /** The broadcast shape of the given inputs; empty when a rank is unknown. */
  static Optional<Shape> broadcastShapes(InferenceContext c, List<Integer> inputs) {
    List<Shape> shapes = new ArrayList<>();
    for (int i : inputs) {
      Optional<Shape> s = c.shape(i);
      if (s.isEmpty()) return Optional.empty();
      shapes.add(s.get());
    }
    Optional<Shape> out = Dims.broadcast(shapes);
    if (out.isEmpty()) throw c.error("input shapes %s do not broadcast", shapes);
    return out;
  }

  /** {@code Where(cond, x, y)}: broadcast of all three, x's element type; folds known selects. */
  static void where(InferenceContext c) {
    DataType elem = c.elemType(1).orElse(c.elemOrNull(2));
    c.setOutput(0, elem, broadcastShapes(c, List.of(0, 1, 2)).orElse(null));
    Optional<SymbolicTensor> cond = c.contents(0);
    Optional<SymbolicTensor> x = c.contents(1);
    Optional<SymbolicTensor> y = c.contents(2);
    if (cond.isEmpty() || x.isEmpty() || y.isEmpty()) return;
    // Pair x and y per element first, then pick with the condition.
    Optional<SymbolicTensor> xIfTrue = SymbolicTensor.zip(cond.get(), x.get(), (k, v) -> pick(k, v, null, true));
    Optional<SymbolicTensor> yIfFalse = SymbolicTensor.zip(cond.get(), y.get(), (k, v) -> pick(k, null, v, false));
    if (xIfTrue.isEmpty() || yIfFalse.isEmpty()) return;
    SymbolicTensor.zip(xIfTrue.get(), yIfFalse.get(), (a, b) -> Dims.isUnknown(a) ? b : a)
        .ifPresent(t -> c.setContents(0, t));
  }

  /** One half of Where's selection: the value when the condition picks this side, else unknown. */
  private static Dim pick(Dim cond, Dim x, Dim y, boolean side) {
    if (!(cond instanceof Dim.Fixed f)) return Dim.unknown();
    boolean truth = f.size() != 0;
    if (truth != side) return Dim.unknown();
    return side ? x : y;
  }

  /** {@code Cast}: the type named by {@code to}; integer contents survive integer casts. */
  static void cast(InferenceContext c) {
    DataType to = DataType.fromCode((int) c.attrLong("to", 0));
    c.setOutput(0, to, c.shape(0).orElse(null));
    foldCast(c, to);
  }

  /** {@code CastLike}: the type of input 1. */
  static void castLike(InferenceContext c) {
    DataType to = c.elemOrNull(1);
    c.setOutput(0, to, c.shape(0).orElse(null));
    if (to != null) foldCast(c, to);
  }

  private static void foldCast(InferenceContext c, DataType to) {
    if (!SymbolicTensor.tracks(to)) return;
    Optional<SymbolicTensor> in = c.contents(0);
    if (in.isEmpty()) return;
    if (to == DataType.BOOL) {
      c.setContents(0, map(in.get(), d -> d instanceof Dim.Fixed f ? Dim.of(f.size() != 0 ? 1 : 0) : Dim.unknown()));
    } else {
      c.setContents(0, in.get());
    }
  }

  static SymbolicTensor map(SymbolicTensor t, UnaryOperator<Dim> f) {
    List<Dim> out = new ArrayList<>(t.size());
    for (Dim d : t.values()) out.add(f.apply(d));
    return SymbolicTensor.of(t.shape(), out);
  }

  // ---- folding operators on dims -------------------------------------------------------------

  static Dim neg(Dim d) {
    return d instanceof Dim.Fixed f ? Dim.of(-f.size()) : Dim.unknown();
  }

  static Dim abs(Dim d) {
    // A symbol is a size, never negative.
    return d instanceof Dim.Fixed f ? Dim.of(Math.abs(f.size())) : d;
  }

  static Dim sign(Dim d) {
    return d instanceof Dim.Fixed f ? Dim.of(Long.signum(f.size())) : Dim.unknown();
  }

  static Dim max(Dim a, Dim b) {
    if (a instanceof Dim.Fixed fa && b instanceof Dim.Fixed fb) return Dim.of(Math.max(fa.size(), fb.size()));
    if (Dims.sameSize(a, b)) return a;
    return Dim.unknown();
  }

  static Dim min(Dim a, Dim b) {
    if (a instanceof Dim.Fixed fa && b instanceof Dim.Fixed fb) return Dim.of(Math.min(fa.size(), fb.size()));
    if (Dims.sameSize(a, b)) return a;
    return Dim.unknown();
  }

  static Dim mod(Dim a, Dim b) {
    if (a instanceof Dim.Fixed fa && b instanceof Dim.Fixed fb && fb.size() != 0) {
      return Dim.of(Math.floorMod(fa.size(), fb.size()));
    }
    return Dim.unknown();
  }

  static Dim equal(Dim a, Dim b) {
    if (a instanceof Dim.Fixed fa && b instanceof Dim.Fixed fb) return bool(fa.size() == fb.size());
    if (Dims.sameSize(a, b)) return Dims.ONE;
    return Dim.unknown();
  }

  static Dim less(Dim a, Dim b) {
    if (a instanceof Dim.Fixed fa && b instanceof Dim.Fixed fb) return bool(fa.size() < fb.size());
    return Dims.sameSize(a, b) ? Dims.ZERO : Dim.unknown();
  }

  static Dim greater(Dim a, Dim b) {
    return less(b, a);
  }

  static Dim lessOrEqual(Dim a, Dim b) {
    if (a instanceof Dim.Fixed fa && b instanceof Dim.Fixed fb) return bool(fa.size() <= fb.size());
    return Dims.sameSize(a, b) ? Dims.ONE : Dim.unknown();
  }

  static Dim greaterOrEqual(Dim a, Dim b) {
    return lessOrEqual(b, a);
  }

  static Dim and(Dim a, Dim b) {
    if (Dims.isFixed(a, 0) || Dims.isFixed(b, 0)) return Dims.ZERO;
    if (a instanceof Dim.Fixed && b instanceof Dim.Fixed) return Dims.ONE;
    return Dim.unknown();
  }

  static Dim or(Dim a, Dim b) {
    if (a instanceof Dim.Fixed fa && fa.size() != 0) return Dims.ONE;
    if (b instanceof Dim.Fixed fb && fb.size() != 0) return Dims.ONE;
    if (a instanceof Dim.Fixed && b instanceof Dim.Fixed) return Dims.ZERO;
    return Dim.unknown();
  }

  static Dim xor(Dim a, Dim b) {
    if (a instanceof Dim.Fixed fa && b instanceof Dim.Fixed fb) return bool((fa.size() != 0) != (fb.size() != 0));
    return Dim.unknown();
  }

  private static Dim bool(boolean b) {
    return b ? Dims.ONE : Dims.ZERO;
  }
}
