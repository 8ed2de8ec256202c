package dev.graft.trainer.autodiff.rules;

import static dev.graft.trainer.autodiff.GradBuilder.grads;
import static dev.graft.trainer.autodiff.GradBuilder.none;
import static dev.graft.trainer.autodiff.GradBuilder.some;

import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.trainer.autodiff.GradBuilder;
import java.util.List;
import java.util.Optional;

/**
 * Gradients of the broadcasting arithmetic ops. Each input's gradient is computed at the output's
 * shape and then summed back to the input's shape ({@link GradBuilder#unbroadcast}).
 *
 * <pre>
 *   y = A + B   dA = unb(g)          dB = unb(g)
 *   y = A - B   dA = unb(g)          dB = unb(-g)
 *   y = A * B   dA = unb(g * B)      dB = unb(g * A)
 *   y = A / B   dA = unb(g / B)      dB = unb(-(g * y) / B)
 *   y = X ^ E   dX = unb(g * E * X^(E-1))   (E constant)
 * </pre>
 */
public final class ArithmeticRules {
  private ArithmeticRules() {}

  public static List<Optional<Value>> add(GradBuilder b, Node n, List<Value> g) {
    Value gy = g.get(0);
    Value y = n.output();
    return grads(
        b.needs(0) ? some(b.unbroadcast(gy, y, n.input(0))) : none(),
        b.needs(1) ? some(b.unbroadcast(gy, y, n.input(1))) : none());
  }

  public static List<Optional<Value>> sub(GradBuilder b, Node n, List<Value> g) {
    Value gy = g.get(0);
    Value y = n.output();
    return grads(
        b.needs(0) ? some(b.unbroadcast(gy, y, n.input(0))) : none(),
        b.needs(1) ? some(b.unbroadcast(b.neg(gy), y, n.input(1))) : none());
  }

  public static List<Optional<Value>> mul(GradBuilder b, Node n, List<Value> g) {
    Value gy = g.get(0);
    Value y = n.output();
    Value x0 = n.input(0);
    Value x1 = n.input(1);
    return grads(
        b.needs(0) ? some(b.unbroadcast(b.mul(gy, x1), y, x0)) : none(),
        b.needs(1) ? some(b.unbroadcast(b.mul(gy, x0), y, x1)) : none());
  }

  public static List<Optional<Value>> div(GradBuilder b, Node n, List<Value> g) {
    Value gy = g.get(0);
    Value y = n.output();
    Value x1 = n.input(1);
    return grads(
        b.needs(0) ? some(b.unbroadcast(b.div(gy, x1), y, n.input(0))) : none(),
        b.needs(1) ? some(b.unbroadcast(b.neg(b.div(b.mul(gy, y), x1)), y, x1)) : none());
  }

  public static List<Optional<Value>> neg(GradBuilder b, Node n, List<Value> g) {
    return grads(some(b.neg(g.get(0))));
  }

  public static List<Optional<Value>> pow(GradBuilder b, Node n, List<Value> g) {
    if (b.needs(1)) {
      throw b.fail(
          "the exponent '"
              + n.input(1).name()
              + "' depends on a trainable parameter; only a constant exponent is supported."
              + " Freeze the parameters that lead into the exponent.");
    }
    Value x = n.input(0);
    Value e = n.input(1);
    if (!e.dataType().equals(x.dataType()) || x.dataType().isEmpty()) {
      // Pow lets the exponent have its own type; the arithmetic below needs x's.
      e = b.op("CastLike", e, x);
    }
    Value em1 = b.sub(e, b.scalar(1.0, x));
    Value dx = b.mul(g.get(0), b.mul(e, b.op("Pow", x, em1)));
    return grads(some(b.unbroadcast(dx, n.output(), x)));
  }
}
