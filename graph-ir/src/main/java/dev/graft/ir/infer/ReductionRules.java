package dev.graft.ir.infer;

import dev.graft.ir.DataType;
import dev.graft.ir.Dim;
import dev.graft.ir.Shape;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Reductions (ReduceMean, ReduceSum, ...) and ArgMax/ArgMin. Reduce axes are an attribute up to
 * opset 17 and an input from 18, except ReduceSum, whose axes became an input at 13.
 */
final class ReductionRules {
  private ReductionRules() {}

  /** A Reduce* rule whose axes are an input from {@code axesInputSince}. */
  static ShapeRule reduce(long axesInputSince) {
    return c -> reduce(c, axesInputSince);
  }

  private static void reduce(InferenceContext c, long axesInputSince) {
    DataType elem = c.elemOrNull(0);
    Optional<Shape> in = c.shape(0);
    boolean keep = c.attrLong("keepdims", 1) != 0;
    if (in.isEmpty()) {
      c.setOutput(0, elem, null);
      return;
    }
    int rank = in.get().rank();
    boolean fromInput = c.opset() >= axesInputSince;
    boolean given = fromInput ? c.hasInput(1) : c.node().hasAttr("axes");
    Optional<long[]> axes = c.intsAttrOrInput("axes", 1, axesInputSince);
    if (given && axes.isEmpty()) {
      // Axes computed at run time: with keepdims the rank survives, nothing more.
      c.setOutput(0, elem, keep ? Dims.unknownDims(rank) : null);
      return;
    }
    boolean[] reduced = new boolean[rank];
    if (!given || axes.get().length == 0) {
      if (fromInput && c.attrLong("noop_with_empty_axes", 0) != 0) {
        c.setOutput(0, elem, in.get());
        return;
      }
      java.util.Arrays.fill(reduced, true);
    } else {
      for (int a : c.axes(axes.get(), rank)) reduced[a] = true;
    }
    List<Dim> out = new ArrayList<>();
    for (int i = 0; i < rank; i++) {
      if (!reduced[i]) out.add(in.get().dim(i));
      else if (keep) out.add(Dims.ONE);
    }
    c.setOutput(0, elem, Shape.of(out));
  }

  /** {@code ArgMax}, {@code ArgMin}: int64, the axis reduced (kept as 1 by default). */
  static void argReduce(InferenceContext c) {
    Optional<Shape> in = c.shape(0);
    if (in.isEmpty()) {
      c.setOutput(0, DataType.INT64, null);
      return;
    }
    int rank = in.get().rank();
    int axis = c.axis(c.attrLong("axis", 0), rank);
    boolean keep = c.attrLong("keepdims", 1) != 0;
    List<Dim> out = new ArrayList<>();
    for (int i = 0; i < rank; i++) {
      if (i != axis) out.add(in.get().dim(i));
      else if (keep) out.add(Dims.ONE);
    }
    c.setOutput(0, DataType.INT64, Shape.of(out));
  }
}
