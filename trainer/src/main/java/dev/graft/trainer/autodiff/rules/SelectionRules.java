package dev.graft.trainer.autodiff.rules;

import static dev.graft.trainer.autodiff.GradBuilder.grads;
import static dev.graft.trainer.autodiff.GradBuilder.none;
import static dev.graft.trainer.autodiff.GradBuilder.some;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.trainer.autodiff.GradBuilder;
import java.util.List;
import java.util.Optional;

/** Gradients of ops that route each element from one input: Where, Clip, Max, Min. */
public final class SelectionRules {
  private SelectionRules() {}

  /** y = Where(c, X, Y): dX = unb(Where(c, g, 0)), dY = unb(Where(c, 0, g)). */
  public static List<Optional<Value>> where(GradBuilder b, Node n, List<Value> g) {
    Value gy = g.get(0);
    Value y = n.output();
    Value c = n.input(0);
    Value zero = b.scalar(0.0, gy.type().isPresent() ? gy : y);
    return grads(
        none(),
        b.needs(1) ? some(b.unbroadcast(b.where(c, gy, zero), y, n.input(1))) : none(),
        b.needs(2) ? some(b.unbroadcast(b.where(c, zero, gy), y, n.input(2))) : none());
  }

  /** y = Clip(x, lo, hi): dx = g where lo <= x <= hi (bounds get no gradient). */
  public static List<Optional<Value>> clip(GradBuilder b, Node n, List<Value> g) {
    if (b.needs(1) || b.needs(2)) {
      throw b.fail(
          "Clip's bounds depend on a trainable parameter; only the clipped input has a rule."
              + " Freeze the parameters that lead into the bounds.");
    }
    Value x = n.input(0);
    Value mask = null;
    if (n.input(1) != null) mask = b.op("GreaterOrEqual", x, n.input(1));
    if (n.input(2) != null) {
      Value m = b.op("LessOrEqual", x, n.input(2));
      mask = mask == null ? m : b.op("And", mask, m);
    }
    Value dx = mask == null ? g.get(0) : b.where(mask, g.get(0), b.scalar(0.0, x));
    return grads(some(b.typedLike(dx, x)));
  }

  /** y = Max(x_1..x_k) (or Min): dx_i = unb(g where x_i == y); ties pass g to each tied input. */
  public static List<Optional<Value>> maxOrMin(GradBuilder b, Node n, List<Value> g) {
    Value y = n.output();
    Value gy = g.get(0);
    ImmutableList.Builder<Optional<Value>> out = ImmutableList.builder();
    for (int i = 0; i < n.inputCount(); i++) {
      if (!b.needs(i)) {
        out.add(none());
        continue;
      }
      Value x = n.input(i);
      Value picked = b.where(b.op("Equal", x, y), gy, b.scalar(0.0, y));
      out.add(some(b.unbroadcast(picked, y, x)));
    }
    return out.build();
  }
}
