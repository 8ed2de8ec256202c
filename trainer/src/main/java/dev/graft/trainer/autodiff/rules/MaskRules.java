package dev.graft.trainer.autodiff.rules;

import static dev.graft.trainer.autodiff.GradBuilder.grads;
import static dev.graft.trainer.autodiff.GradBuilder.none;
import static dev.graft.trainer.autodiff.GradBuilder.some;

import dev.graft.ir.Attr;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.trainer.autodiff.GradBuilder;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;

/**
 * Gradients of the ops decoders build causal masks and positions with: Trilu keeps a triangle, so
 * its gradient is the same triangle of the output gradient; Range makes integers from integers
 * and has none.
 */
public final class MaskRules {
  private MaskRules() {}

  /** y = Trilu(x, k, upper): dx = Trilu(g, k, upper); the diagonal offset k gets none. */
  public static List<Optional<Value>> trilu(GradBuilder b, Node n, List<Value> g) {
    if (b.needs(1)) throw b.fail("Trilu's offset k is an integer and has no gradient.");
    Value x = n.input(0);
    Value k = n.input(1);
    Value dx =
        b.op("Trilu", Arrays.asList(g.get(0), k), Attr.of("upper", n.attrLong("upper", 1)));
    return k == null ? grads(some(b.typedLike(dx, x))) : grads(some(b.typedLike(dx, x)), none());
  }

  /** Range(start, limit, delta) has no gradient: a trainable value cannot lead into it. */
  public static List<Optional<Value>> range(GradBuilder b, Node n, List<Value> g) {
    throw b.fail(
        "Range's result is a sequence of steps and has no gradient with respect to its bounds."
            + " Freeze the parameters that lead into its inputs.");
  }
}
