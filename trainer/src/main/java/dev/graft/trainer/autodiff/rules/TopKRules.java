package dev.graft.trainer.autodiff.rules;

import static dev.graft.trainer.autodiff.GradBuilder.grads;
import static dev.graft.trainer.autodiff.GradBuilder.none;
import static dev.graft.trainer.autodiff.GradBuilder.some;

import dev.graft.ir.Attr;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.trainer.autodiff.GradBuilder;
import java.util.List;
import java.util.Optional;

/**
 * Gradient of TopK through its values: each picked element passes its gradient back to where it
 * was picked from; the others get zero. The indices are integers and carry none, nor does K.
 *
 * <pre>
 *   (v, i) = TopK(x, K, axis)     dx = ScatterElements(zeros(x), i, g_v, axis)
 * </pre>
 *
 * TopK's indices along the axis are distinct, so the plain (no reduction) scatter is exact.
 */
public final class TopKRules {
  private TopKRules() {}

  public static List<Optional<Value>> topK(GradBuilder b, Node n, List<Value> g) {
    Value x = n.input(0);
    Value gv = g.get(0);
    if (gv == null) return grads(some(b.zerosLike(x)), none());
    int r = b.rank(x, "TopK's gradient scatters along its axis");
    long axis = GradBuilder.axis(n.attrLong("axis", -1), r);
    Value dx = b.op("ScatterElements", List.of(b.zerosLike(x), n.output(1), gv), Attr.of("axis", axis));
    return grads(some(b.typedLike(dx, x)), none());
  }
}
