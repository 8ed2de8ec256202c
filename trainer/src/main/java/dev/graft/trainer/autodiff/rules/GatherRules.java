package dev.graft.trainer.autodiff.rules;

import static dev.graft.trainer.autodiff.GradBuilder.grads;
import static dev.graft.trainer.autodiff.GradBuilder.none;
import static dev.graft.trainer.autodiff.GradBuilder.some;

import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.trainer.autodiff.GradBuilder;
import java.util.List;
import java.util.Optional;

/**
 * Gradient of Gather: an embedding lookup's rows are scatter-added back, so a row read twice gets
 * both contributions.
 *
 * <pre>
 *   y = Gather(data, idx, axis=0)   d(data) = ScatterND(zeros(data), Unsqueeze(idx, -1), g, reduction=add)
 * </pre>
 *
 * For another axis, the gathered axis is moved to the front (data and gradient are transposed),
 * scattered, and moved back.
 */
public final class GatherRules {
  private GatherRules() {}

  public static List<Optional<Value>> gather(GradBuilder b, Node n, List<Value> g) {
    Value data = n.input(0);
    Value idx = n.input(1);
    String why = "Gather's gradient moves the gathered axis to the front";
    int r = b.rank(data, why);
    long axis = GradBuilder.axis(n.attrLong("axis", 0), r);
    if (idx.dataType().orElse(DataType.INT64) != DataType.INT64) idx = b.cast(idx, DataType.INT64);
    // Negative indices count from the end; make them explicit so the scatter sees one convention.
    Value zeroI = b.intScalar(0);
    idx = b.where(b.op("Less", idx, zeroI), b.add(idx, b.dimOf(data, (int) axis)), idx);
    Value at = b.unsqueeze(idx, -1);
    Value gy = g.get(0);
    Value dx;
    if (axis == 0) {
      dx = b.op("ScatterND", List.of(b.zerosLike(data), at, gy), Attr.of("reduction", "add"));
    } else {
      int q = b.rank(n.input(1), why);
      long[] p = new long[r];
      p[0] = axis;
      for (int i = 0, j = 1; i < r; i++) if (i != axis) p[j++] = i;
      long[] pg = new long[r - 1 + q];
      int j = 0;
      for (int i = 0; i < q; i++) pg[j++] = axis + i;
      for (int i = 0; i < axis; i++) pg[j++] = i;
      for (int i = (int) axis + q; i < r - 1 + q; i++) pg[j++] = i;
      Value zerosT =
          ConcatSplitSliceRules.zeros(
              b, b.op("Gather", List.of(b.shapeOf(data), b.ints(p)), Attr.of("axis", 0L)), data);
      Value s =
          b.op(
              "ScatterND",
              List.of(zerosT, at, b.transpose(gy, pg)),
              Attr.of("reduction", "add"));
      long[] inv = new long[r];
      for (int i = 0; i < r; i++) inv[(int) p[i]] = i;
      dx = b.transpose(s, inv);
    }
    return grads(some(b.typedLike(dx, data)), none());
  }
}
