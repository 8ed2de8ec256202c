package dev.graft.trainer.autodiff.rules;

import static dev.graft.trainer.autodiff.GradBuilder.grads;
import static dev.graft.trainer.autodiff.GradBuilder.some;

import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.trainer.autodiff.GradBuilder;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;

/**
 * Gradient of ReduceLogSumExp: the softmax over the reduced axes, written with the forward output
 * so no second reduction runs and nothing overflows.
 *
 * <pre>
 *   y = ReduceLogSumExp(x, axes)     dx = g · Exp(x - y)      (g and y with the reduced axes kept)
 * </pre>
 *
 * Axes come from the attribute (before opset 18) or the constant second input, as for the other
 * reductions; no axes means all of them.
 */
public final class LogSumExpRules {
  private LogSumExpRules() {}

  public static List<Optional<Value>> reduceLogSumExp(GradBuilder b, Node n, List<Value> g) {
    Value x = n.input(0);
    Value y = n.output();
    Value gy = g.get(0);
    boolean keep = n.attrLong("keepdims", 1) != 0;
    long[] axes = axes(b, n);
    if (axes.length == 0 && n.attrLong("noop_with_empty_axes", 0) != 0) {
      return grads(some(gy));
    }
    if (!keep && axes.length > 0) {
      int r = b.rank(x, "ReduceLogSumExp's gradient puts the reduced axes back");
      long[] sorted = Arrays.stream(axes).map(a -> GradBuilder.axis(a, r)).sorted().toArray();
      gy = b.unsqueeze(gy, sorted);
      y = b.unsqueeze(y, sorted);
    }
    // keepdims=0 over all axes leaves scalars, which broadcast as they are.
    Value dx = b.mul(gy, b.op("Exp", b.sub(x, y)));
    return grads(some(b.typedLike(dx, x)));
  }

  private static long[] axes(GradBuilder b, Node n) {
    Value axesIn = n.input(1);
    if (axesIn != null) {
      return GradBuilder.constantInts(axesIn)
          .orElseThrow(
              () -> b.fail("the axes '" + axesIn.name() + "' are computed at run time; the gradient needs them constant."
                  + " Fold them to a constant first."));
    }
    return n.attrLongs("axes").orElse(new long[0]);
  }
}
