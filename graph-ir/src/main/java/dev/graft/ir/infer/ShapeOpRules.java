package dev.graft.ir.infer;

import dev.graft.ir.DataType;
import dev.graft.ir.Dim;
import dev.graft.ir.Shape;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;

/**
 * Ops that compute or rearrange shapes: Shape, Size, Reshape, Flatten, Transpose, Expand, Tile.
 * {@code Shape} is where symbolic contents start: its output holds the input's dims themselves.
 */
final class ShapeOpRules {
  private ShapeOpRules() {}

  /** {@code Shape}: int64 [rank], contents the dims (start/end slicing from opset 15). */
  static void shape(InferenceContext c) {
    Optional<Shape> in = c.shape(0);
    if (in.isEmpty()) {
      c.setOutput(0, DataType.INT64, Shape.of(Dim.unknown()));
      return;
    }
    int rank = in.get().rank();
    int start = clampShapeIndex(c.attrLong("start", 0), rank);
    int end = clampShapeIndex(c.attrLong("end", rank), rank);
    List<Dim> dims = in.get().dims().subList(start, Math.max(start, end));
    c.setOutput(0, DataType.INT64, Shape.of(dims.size()));
    c.setContents(0, SymbolicTensor.vector(dims));
  }

  private static int clampShapeIndex(long i, int rank) {
    long a = i < 0 ? i + rank : i;
    return (int) Math.max(0, Math.min(rank, a));
  }

  /** {@code Size}: int64 scalar, the element count when it is known. */
  static void size(InferenceContext c) {
    c.setOutput(0, DataType.INT64, Shape.scalar());
    c.shape(0).ifPresent(s -> {
      Dim n = Dims.product(s.dims());
      if (!Dims.isUnknown(n)) c.setContents(0, SymbolicTensor.scalar(n));
    });
  }

  /** {@code Reshape}: the target from input 1's contents (0 copies, -1 is what remains). */
  static void reshape(InferenceContext c) {
    DataType elem = c.elemOrNull(0);
    Optional<SymbolicTensor> target =
        c.opset() < 5
            ? c.attrLongs("shape").map(s -> SymbolicTensor.ofLongs(Shape.of(s.length), s))
            : c.contents(1);
    if (target.isEmpty()) {
      // The rank still follows from the target's length.
      Optional<Shape> ts = c.shape(1);
      Shape out =
          ts.isPresent() && ts.get().rank() == 1 && ts.get().dim(0) instanceof Dim.Fixed f
              ? Dims.unknownDims((int) f.size())
              : null;
      c.setOutput(0, elem, out);
      return;
    }
    boolean allowZero = c.attrLong("allowzero", 0) != 0;
    Optional<Shape> in = c.shape(0);
    List<Dim> out = new ArrayList<>();
    int minusOne = -1;
    for (int i = 0; i < target.get().size(); i++) {
      Dim t = target.get().get(i);
      if (Dims.isFixed(t, 0) && !allowZero) {
        if (in.isPresent() && i < in.get().rank()) out.add(in.get().dim(i));
        else if (in.isPresent()) throw c.error("target entry %s is 0 but the input %s has no dim %s", i, in.get(), i);
        else out.add(Dim.unknown());
      } else if (Dims.isFixed(t, -1)) {
        if (minusOne >= 0) throw c.error("target %s has more than one -1", target.get().values());
        minusOne = i;
        out.add(Dim.unknown());
      } else if (t instanceof Dim.Fixed f && f.size() < -1) {
        throw c.error("target %s has a negative size", target.get().values());
      } else {
        out.add(t);
      }
    }
    if (minusOne >= 0 && in.isPresent()) {
      List<Dim> known = new ArrayList<>(out);
      known.remove(minusOne);
      out.set(minusOne, Dims.quotient(in.get().dims(), known));
    }
    if (in.isPresent() && in.get().isStatic() && Shape.of(out).isStatic()) {
      long a = in.get().numElements().orElseThrow();
      long b = Shape.of(out).numElements().orElseThrow();
      if (a != b) throw c.error("cannot reshape %s (%s elements) to %s (%s elements)", in.get(), a, out, b);
    }
    Shape outShape = Shape.of(out);
    c.setOutput(0, elem, outShape);
    if (outShape.isStatic()) c.contents(0).ifPresent(t -> c.setContents(0, t.reshape(outShape)));
  }

  /** {@code Flatten}: 2-D, split at {@code axis}. */
  static void flatten(InferenceContext c) {
    Optional<Shape> in = c.shape(0);
    if (in.isEmpty()) {
      c.setOutput(0, c.elemOrNull(0), Dims.unknownDims(2));
      return;
    }
    int rank = in.get().rank();
    long axis = c.attrLong("axis", 1);
    int a = (int) (axis < 0 ? axis + rank : axis);
    if (a < 0 || a > rank) throw c.error("axis %s is out of range for rank %s", axis, rank);
    List<Dim> dims = in.get().dims();
    c.setOutput(
        0, c.elemOrNull(0), Shape.of(Dims.product(dims.subList(0, a)), Dims.product(dims.subList(a, rank))));
  }

  /** {@code Transpose}: dims permuted by {@code perm}, reversed when absent. */
  static void transpose(InferenceContext c) {
    Optional<Shape> in = c.shape(0);
    if (in.isEmpty()) {
      c.setOutput(0, c.elemOrNull(0), c.attrLongs("perm").map(p -> Dims.unknownDims(p.length)).orElse(null));
      return;
    }
    int rank = in.get().rank();
    long[] perm = c.attrLongs("perm").orElseGet(() -> {
      long[] p = new long[rank];
      for (int i = 0; i < rank; i++) p[i] = rank - 1 - i;
      return p;
    });
    if (perm.length != rank) throw c.error("perm %s does not match rank %s", Arrays.toString(perm), rank);
    List<Dim> out = new ArrayList<>();
    for (int p : c.axes(perm, rank)) out.add(in.get().dim(p));
    c.setOutput(0, c.elemOrNull(0), Shape.of(out));
  }

  /** {@code Expand}: the input broadcast with the shape in input 1. */
  static void expand(InferenceContext c) {
    Optional<SymbolicTensor> target = c.contents(1);
    Optional<Shape> in = c.shape(0);
    if (target.isEmpty() || in.isEmpty()) {
      Optional<Shape> ts = c.shape(1);
      if (in.isPresent() && ts.isPresent() && ts.get().rank() == 1 && ts.get().dim(0) instanceof Dim.Fixed f) {
        c.setOutput(0, c.elemOrNull(0), Dims.unknownDims((int) Math.max(f.size(), in.get().rank())));
      } else {
        c.setOutput(0, c.elemOrNull(0), null);
      }
      return;
    }
    Shape t = Shape.of(target.get().values());
    Optional<Shape> out = Dims.broadcast(List.of(in.get(), t));
    if (out.isEmpty()) throw c.error("input %s cannot expand to %s", in.get(), t);
    c.setOutput(0, c.elemOrNull(0), out.get());
  }

  /** {@code Tile}: each dim times its repeat count. */
  static void tile(InferenceContext c) {
    Optional<Shape> in = c.shape(0);
    Optional<SymbolicTensor> reps = c.contents(1);
    if (in.isEmpty()) {
      c.setOutput(0, c.elemOrNull(0), null);
      return;
    }
    if (reps.isEmpty()) {
      c.setOutput(0, c.elemOrNull(0), Dims.unknownDims(in.get().rank()));
      return;
    }
    if (reps.get().size() != in.get().rank()) {
      throw c.error("repeats has %s entries for an input of rank %s", reps.get().size(), in.get().rank());
    }
    List<Dim> out = new ArrayList<>();
    for (int i = 0; i < in.get().rank(); i++) out.add(Dims.mul(in.get().dim(i), reps.get().get(i)));
    c.setOutput(0, c.elemOrNull(0), Shape.of(out));
  }
}
