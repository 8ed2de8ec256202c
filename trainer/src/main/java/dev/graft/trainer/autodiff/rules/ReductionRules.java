package dev.graft.trainer.autodiff.rules;

import static dev.graft.trainer.autodiff.GradBuilder.grads;
import static dev.graft.trainer.autodiff.GradBuilder.some;

import dev.graft.ir.Node;
import dev.graft.ir.Shape;
import dev.graft.ir.Value;
import dev.graft.trainer.autodiff.GradBuilder;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;

/**
 * Gradients of reductions: the gradient is broadcast back over the reduced axes (after putting
 * them back when keepdims=0), divided by the count for a mean. Axes are read from the attribute
 * (ReduceMean before opset 18) or from the constant second input (ReduceSum from 13, ReduceMean
 * from 18), whichever the node has.
 */
public final class ReductionRules {
  private ReductionRules() {}

  public static List<Optional<Value>> reduceSum(GradBuilder b, Node n, List<Value> g) {
    return grads(some(spread(b, n, g.get(0), false)));
  }

  public static List<Optional<Value>> reduceMean(GradBuilder b, Node n, List<Value> g) {
    return grads(some(spread(b, n, g.get(0), true)));
  }

  /** y = GlobalAveragePool(x): dx = Expand(g, shape(x)) / (spatial size). */
  public static List<Optional<Value>> globalAveragePool(GradBuilder b, Node n, List<Value> g) {
    Value x = n.input(0);
    int r = b.rank(x, "GlobalAveragePool averages over every axis after the first two");
    Value count = b.countOf(x, GradBuilder.axesFrom(2, r), x);
    return grads(some(b.typedLike(b.div(b.expandLike(g.get(0), x), count), x)));
  }

  private static Value spread(GradBuilder b, Node n, Value gy, boolean mean) {
    Value x = n.input(0);
    boolean keep = n.attrLong("keepdims", 1) != 0;
    long[] axes = axes(b, n);
    if (axes.length == 0 && n.attrLong("noop_with_empty_axes", 0) != 0) {
      return gy;
    }
    boolean all = axes.length == 0;
    if (!all && Arrays.stream(axes).anyMatch(a -> a < 0)) {
      int r = b.rank(x, "the reduction's axes are negative");
      axes = Arrays.stream(axes).map(a -> GradBuilder.axis(a, r)).sorted().toArray();
    }
    Value back = gy;
    if (!keep && !all) back = b.unsqueeze(gy, Arrays.stream(axes).sorted().toArray());
    Value dx = b.expandLike(back, x);
    if (mean) {
      Value count;
      if (all) {
        Optional<Long> numel = x.shape().flatMap(Shape::numElements);
        count = numel.isPresent() ? b.scalar(numel.get(), x) : b.op("CastLike", b.op("Size", x), x);
      } else {
        count = b.countOf(x, axes, x);
      }
      dx = b.typedLike(b.div(dx, count), x);
    }
    return dx;
  }

  private static long[] axes(GradBuilder b, Node n) {
    Value axesIn = n.input(1);
    if (axesIn != null) {
      return GradBuilder.constantInts(axesIn)
          .orElseThrow(
              () ->
                  b.fail(
                      "the axes '"
                          + axesIn.name()
                          + "' are computed at run time; the gradient needs them constant."
                          + " Fold them to a constant first."));
    }
    return n.attrLongs("axes").orElse(new long[0]);
  }
}
