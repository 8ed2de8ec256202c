package dev.graft.trainer.autodiff.rules;

import static dev.graft.trainer.autodiff.GradBuilder.grads;
import static dev.graft.trainer.autodiff.GradBuilder.some;

import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.trainer.autodiff.GradBuilder;
import java.util.List;
import java.util.Optional;

/**
 * Gradients of elementwise functions; where the derivative is a function of the output (exp,
 * tanh, sigmoid, sqrt) the rule reads the forward output rather than recomputing.
 */
public final class UnaryRules {
  private UnaryRules() {}

  private static List<Optional<Value>> result(GradBuilder b, Node n, Value dx) {
    return grads(some(b.typedLike(dx, n.input(0))));
  }

  /** y = sqrt(x): dx = g * 0.5 / y. */
  public static List<Optional<Value>> sqrt(GradBuilder b, Node n, List<Value> g) {
    Value y = n.output();
    return result(b, n, b.div(b.mul(g.get(0), b.scalar(0.5, y)), y));
  }

  /** y = exp(x): dx = g * y. */
  public static List<Optional<Value>> exp(GradBuilder b, Node n, List<Value> g) {
    return result(b, n, b.mul(g.get(0), n.output()));
  }

  /** y = log(x): dx = g / x. */
  public static List<Optional<Value>> log(GradBuilder b, Node n, List<Value> g) {
    return result(b, n, b.div(g.get(0), n.input(0)));
  }

  /** y = tanh(x): dx = g * (1 - y^2). */
  public static List<Optional<Value>> tanh(GradBuilder b, Node n, List<Value> g) {
    Value y = n.output();
    return result(b, n, b.mul(g.get(0), b.sub(b.scalar(1.0, y), b.mul(y, y))));
  }

  /** y = sigmoid(x): dx = g * y * (1 - y). */
  public static List<Optional<Value>> sigmoid(GradBuilder b, Node n, List<Value> g) {
    Value y = n.output();
    return result(b, n, b.mul(g.get(0), b.mul(y, b.sub(b.scalar(1.0, y), y))));
  }

  /** y = max(x, 0): dx = g where x > 0, else 0. */
  public static List<Optional<Value>> relu(GradBuilder b, Node n, List<Value> g) {
    Value x = n.input(0);
    Value zero = b.scalar(0.0, x);
    return result(b, n, b.where(b.op("Greater", x, zero), g.get(0), zero));
  }

  /** y = erf(x): dx = g * 2/sqrt(pi) * exp(-x^2). */
  public static List<Optional<Value>> erf(GradBuilder b, Node n, List<Value> g) {
    Value x = n.input(0);
    Value e = b.op("Exp", b.neg(b.mul(x, x)));
    return result(b, n, b.mul(g.get(0), b.mul(e, b.scalar(2.0 / Math.sqrt(Math.PI), x))));
  }

  /**
   * com.microsoft Gelu (contrib, every ORT build), the exact GELU that {@code GeluFusion} makes of
   * the exporters' Erf pattern in the training copy: the same derivative as Gelu-20's exact form.
   */
  public static List<Optional<Value>> contribGelu(GradBuilder b, Node n, List<Value> g) {
    return result(b, n, exactGeluBackward(b, n.input(0), g.get(0)));
  }

  /**
   * dx = g * (Phi(x) + x phi(x)) in nine elementwise ops over x's size, none of them kept from
   * the forward pass, and no scalar-broadcast Sum (ORT's Sum with a broadcast scalar costs three
   * same-shape Adds):
   *
   * <pre>
   *   t = x / sqrt 2;  p = exp(c - t * t),  c = ln(2 / sqrt pi),  so  t * p = 2 x phi(x)
   *   dx = (g * 0.5) * ((erf(t) + t * p) + 1)          since 2 Phi(x) = 1 + erf(t)
   * </pre>
   *
   * The constant of phi is folded into the Exp's offset, and {@code g * 0.5} comes first, where
   * ORT folds it into the MatMul that produced g (its MatMulScaleFusion) when it can.
   */
  private static Value exactGeluBackward(GradBuilder b, Value x, Value g) {
    Value t = b.mul(x, b.scalar(1 / Math.sqrt(2), x));
    Value half = b.mul(g, b.scalar(0.5, x));
    Value p = b.op("Exp", b.sub(b.scalar(Math.log(2 / Math.sqrt(Math.PI)), x), b.mul(t, t)));
    Value twice = b.add(b.add(b.op("Erf", t), b.mul(t, p)), b.scalar(1.0, x));
    return b.mul(half, twice);
  }

  /**
   * Gelu (opset 20). Exact: y = x * Phi(x), dx = g * (Phi(x) + x * phi(x)). Tanh approximation:
   * y = x/2 * (1 + tanh(u)), u = k (x + c x^3), dx = g * (1/2 (1 + t) + x/2 (1 - t^2) k (1 + 3c
   * x^2)).
   */
  public static List<Optional<Value>> gelu(GradBuilder b, Node n, List<Value> g) {
    Value x = n.input(0);
    String approx = n.attrString("approximate", "none");
    Value half = b.scalar(0.5, x);
    Value one = b.scalar(1.0, x);
    Value d;
    if (approx.equals("tanh")) {
      double k = Math.sqrt(2.0 / Math.PI);
      double c = 0.044715;
      Value x2 = b.mul(x, x);
      Value u = b.mul(b.scalar(k, x), b.add(x, b.mul(b.scalar(c, x), b.mul(x2, x))));
      Value t = b.op("Tanh", u);
      Value left = b.mul(half, b.add(one, t));
      Value du = b.mul(b.scalar(k, x), b.add(one, b.mul(b.scalar(3 * c, x), x2)));
      Value right = b.mul(b.mul(half, x), b.mul(b.sub(one, b.mul(t, t)), du));
      d = b.add(left, right);
    } else if (approx.equals("none")) {
      return result(b, n, exactGeluBackward(b, x, g.get(0)));
    } else {
      throw b.fail("unknown approximate='" + approx + "'; expected 'none' or 'tanh'.");
    }
    return result(b, n, b.mul(g.get(0), d));
  }
}
