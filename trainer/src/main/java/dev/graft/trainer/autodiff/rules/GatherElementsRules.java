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
 * Gradient of GatherElements: the gradient of each gathered element is added back at the place it
 * was read from, so an element read twice gets both contributions.
 *
 * <pre>
 *   y = GatherElements(data, idx, axis)   d(data) = ScatterElements(zeros(data), idx, g, axis, reduction=add)
 * </pre>
 *
 * Negative indices are made explicit first (idx + size of the axis), so the scatter sees one
 * convention. The indices get no gradient.
 */
public final class GatherElementsRules {
  private GatherElementsRules() {}

  public static List<Optional<Value>> gatherElements(GradBuilder b, Node n, List<Value> g) {
    Value data = n.input(0);
    Value idx = n.input(1);
    int r = b.rank(data, "GatherElements' gradient scatters along its axis");
    long axis = GradBuilder.axis(n.attrLong("axis", 0), r);
    if (idx.dataType().orElse(DataType.INT64) != DataType.INT64) idx = b.cast(idx, DataType.INT64);
    Value size = b.dimOf(data, (int) axis);
    idx = b.where(b.op("Less", idx, b.intScalar(0)), b.add(idx, size), idx);
    Value dx =
        b.op(
            "ScatterElements",
            List.of(b.zerosLike(data), idx, g.get(0)),
            Attr.of("axis", axis),
            Attr.of("reduction", "add"));
    return grads(some(b.typedLike(dx, data)), none());
  }
}
