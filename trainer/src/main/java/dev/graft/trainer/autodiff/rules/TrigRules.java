package dev.graft.trainer.autodiff.rules;

import static dev.graft.trainer.autodiff.GradBuilder.grads;
import static dev.graft.trainer.autodiff.GradBuilder.some;

import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.trainer.autodiff.GradBuilder;
import java.util.List;
import java.util.Optional;

/**
 * Gradients of the elementwise functions decoder exports add: Sin and Cos (rotary tables computed
 * in the graph from inverse frequencies) and Reciprocal (RMSNorm's {@code 1 / sqrt(...)}).
 */
public final class TrigRules {
  private TrigRules() {}

  /** y = sin(x): dx = g * cos(x). */
  public static List<Optional<Value>> sin(GradBuilder b, Node n, List<Value> g) {
    Value x = n.input(0);
    return grads(some(b.typedLike(b.mul(g.get(0), b.op("Cos", x)), x)));
  }

  /** y = cos(x): dx = -g * sin(x). */
  public static List<Optional<Value>> cos(GradBuilder b, Node n, List<Value> g) {
    Value x = n.input(0);
    return grads(some(b.typedLike(b.neg(b.mul(g.get(0), b.op("Sin", x))), x)));
  }

  /** y = 1 / x: dx = -g * y^2. */
  public static List<Optional<Value>> reciprocal(GradBuilder b, Node n, List<Value> g) {
    Value y = n.output();
    return grads(some(b.typedLike(b.neg(b.mul(g.get(0), b.mul(y, y))), n.input(0))));
  }
}
