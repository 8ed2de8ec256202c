package dev.graft.trainer.autodiff.rules;

import static dev.graft.trainer.autodiff.GradBuilder.grads;
import static dev.graft.trainer.autodiff.GradBuilder.none;
import static dev.graft.trainer.autodiff.GradBuilder.some;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Attr;
import dev.graft.ir.Node;
import dev.graft.ir.Shape;
import dev.graft.ir.Value;
import dev.graft.trainer.autodiff.GradBuilder;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/** Gradients of Concat, Split and Slice: each is the other's inverse, Slice scatters back. */
public final class ConcatSplitSliceRules {
  private ConcatSplitSliceRules() {}

  /** y = Concat(x_1..x_k, axis): dx_1..dx_k = Split(g, sizes of x_i along axis). */
  public static List<Optional<Value>> concat(GradBuilder b, Node n, List<Value> g) {
    long axis = n.attrLong("axis", 0);
    if (axis < 0) axis += b.rank(n.output(), "Concat has a negative axis");
    int k = n.inputCount();
    long[] fixed = new long[k];
    boolean allFixed = true;
    for (int i = 0; i < k; i++) {
      Value x = n.input(i);
      Optional<Shape> s = x.shape();
      if (s.isPresent() && s.get().rank() > axis && s.get().dim((int) axis).isFixed()) {
        fixed[i] = s.get().dim((int) axis).value();
      } else {
        allFixed = false;
      }
    }
    Value split;
    if (allFixed) {
      split = b.ints(fixed);
    } else {
      List<Value> parts = new ArrayList<>();
      for (int i = 0; i < k; i++) parts.add(b.unsqueeze(b.dimOf(n.input(i), (int) axis), 0));
      split = b.op("Concat", parts, Attr.of("axis", 0L));
    }
    List<Value> pieces = b.ops("Split", k, List.of(g.get(0), split), Attr.of("axis", axis));
    ImmutableList.Builder<Optional<Value>> out = ImmutableList.builder();
    for (int i = 0; i < k; i++) {
      out.add(b.needs(i) ? some(b.typedLike(pieces.get(i), n.input(i))) : none());
    }
    return out.build();
  }

  /** y_1..y_k = Split(x, axis): dx = Concat(g_1..g_k), zeros for pieces nothing used. */
  public static List<Optional<Value>> split(GradBuilder b, Node n, List<Value> g) {
    long axis = n.attrLong("axis", 0);
    List<Value> parts = new ArrayList<>();
    for (int i = 0; i < n.outputs().size(); i++) {
      Value gi = g.get(i);
      parts.add(gi != null ? gi : b.zerosLike(n.output(i)));
    }
    Value dx = b.op("Concat", parts, Attr.of("axis", axis));
    return grads(some(b.typedLike(dx, n.input(0))));
  }

  /**
   * y = Slice(x, starts, ends, axes, steps): dx is g scattered into zeros at the positions the
   * slice read. The positions come from slicing an iota shaped like x with the very same inputs,
   * so negative, clamped and strided bounds, static or computed, need no case analysis here.
   *
   * <pre>
   *   idx = Reshape(Range(0, Size(x)), Shape(x)); at = Slice(idx, starts, ends, axes, steps)
   *   dx  = Reshape(ScatterND(zeros[Size(x)], Reshape(at, [-1, 1]), Reshape(g, [-1])), Shape(x))
   * </pre>
   */
  public static List<Optional<Value>> slice(GradBuilder b, Node n, List<Value> g) {
    if (b.needs(1) || b.needs(2) || b.needs(3) || b.needs(4)) {
      throw b.fail("Slice's bounds depend on a trainable parameter; they have no gradient.");
    }
    Value x = n.input(0);
    Value size = b.op("Size", x);
    Value iota = b.reshape(b.op("Range", b.intScalar(0), size, b.intScalar(1)), b.shapeOf(x));
    List<Value> in = new ArrayList<>(n.inputs());
    in.set(0, iota);
    while (in.get(in.size() - 1) == null) in.remove(in.size() - 1);
    Value at = b.op("Slice", in);
    Value flatAt = b.reshape(at, b.ints(-1, 1));
    Value flatG = b.reshape(g.get(0), b.ints(-1));
    Value zeros = zeros(b, b.unsqueeze(size, 0), x);
    Value scattered = b.op("ScatterND", zeros, flatAt, flatG);
    return grads(some(b.reshapeLike(scattered, x)));
  }

  /** Zeros of the given 1-D shape value with {@code like}'s element type. */
  static Value zeros(GradBuilder b, Value shape, Value like) {
    Value z = b.op("ConstantOfShape", shape);
    return b.op("CastLike", z, like);
  }
}
