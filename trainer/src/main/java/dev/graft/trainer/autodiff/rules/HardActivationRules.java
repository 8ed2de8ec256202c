package dev.graft.trainer.autodiff.rules;

import static dev.graft.trainer.autodiff.GradBuilder.grads;
import static dev.graft.trainer.autodiff.GradBuilder.some;

import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.trainer.autodiff.GradBuilder;
import java.util.List;
import java.util.Optional;

/**
 * Gradients of the piecewise-linear activations of mobile CNNs (MobileNetV3's squeeze-excitation
 * gate and hard-swish), where the derivative is a mask on the linear piece.
 */
public final class HardActivationRules {
  private HardActivationRules() {}

  /** y = max(0, min(1, alpha x + beta)): dx = g · alpha where 0 < alpha x + beta < 1, else 0. */
  public static List<Optional<Value>> hardSigmoid(GradBuilder b, Node n, List<Value> g) {
    Value x = n.input(0);
    double alpha = n.attrFloat("alpha", 0.2f);
    double beta = n.attrFloat("beta", 0.5f);
    Value u = b.add(b.mul(x, b.scalar(alpha, x)), b.scalar(beta, x));
    Value inside = b.op("And", b.op("Greater", u, b.scalar(0.0, x)), b.op("Less", u, b.scalar(1.0, x)));
    Value dx = b.where(inside, b.mul(g.get(0), b.scalar(alpha, x)), b.scalar(0.0, x));
    return grads(some(b.typedLike(dx, x)));
  }

  /**
   * y = x · max(0, min(1, x / 6 + 1/2)) (HardSwish, opset 14): dx = g · 0 for x &lt; -3, g for x
   * &gt; 3, g · (2x + 3) / 6 between.
   */
  public static List<Optional<Value>> hardSwish(GradBuilder b, Node n, List<Value> g) {
    Value x = n.input(0);
    Value middle = b.div(b.add(b.mul(x, b.scalar(2.0, x)), b.scalar(3.0, x)), b.scalar(6.0, x));
    Value slope = b.where(b.op("Less", x, b.scalar(-3.0, x)), b.scalar(0.0, x),
        b.where(b.op("Greater", x, b.scalar(3.0, x)), b.scalar(1.0, x), middle));
    return grads(some(b.typedLike(b.mul(g.get(0), slope), x)));
  }
}
