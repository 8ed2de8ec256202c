package dev.graft.trainer.autodiff.rules;

import static dev.graft.trainer.autodiff.GradBuilder.grads;
import static dev.graft.trainer.autodiff.GradBuilder.some;

import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.trainer.autodiff.GradBuilder;
import java.util.List;
import java.util.Optional;

/**
 * Gradients of ops that only move or relabel elements: the gradient moves back the same way.
 * Reshape, Flatten, Squeeze and Unsqueeze all reshape the gradient to the input's shape, which
 * needs neither their shape nor their axes input (attribute or input form alike).
 */
public final class ShapeRules {
  private ShapeRules() {}

  /** y = Transpose(x, perm): dx = Transpose(g, inverse(perm)). */
  public static List<Optional<Value>> transpose(GradBuilder b, Node n, List<Value> g) {
    Value x = n.input(0);
    long[] perm =
        n.attrLongs("perm")
            .orElseGet(
                () -> {
                  int r = b.rank(x, "Transpose without perm reverses the axes");
                  long[] p = new long[r];
                  for (int i = 0; i < r; i++) p[i] = r - 1 - i;
                  return p;
                });
    long[] inv = new long[perm.length];
    for (int i = 0; i < perm.length; i++) inv[(int) perm[i]] = i;
    return grads(some(b.typedLike(b.transpose(g.get(0), inv), x)));
  }

  /** Reshape, Flatten, Squeeze, Unsqueeze: dx = Reshape(g, shape(x)). */
  public static List<Optional<Value>> reshapeBack(GradBuilder b, Node n, List<Value> g) {
    return grads(some(b.reshapeLike(g.get(0), n.input(0))));
  }

  /** y = Expand(x, shape): dx = unb(g). */
  public static List<Optional<Value>> expand(GradBuilder b, Node n, List<Value> g) {
    return grads(some(b.unbroadcast(g.get(0), n.output(), n.input(0))));
  }

  public static List<Optional<Value>> identity(GradBuilder b, Node n, List<Value> g) {
    return grads(some(g.get(0)));
  }

  /** Cast between float types: cast the gradient back to the input's type. */
  public static List<Optional<Value>> cast(GradBuilder b, Node n, List<Value> g) {
    Value x = n.input(0);
    Value d =
        x.dataType().isPresent() ? b.cast(g.get(0), x.dataType().get()) : b.op("CastLike", g.get(0), x);
    return grads(some(b.typedLike(d, x)));
  }

  /**
   * Dropout in inference mode is the identity. Training-mode dropout (a training_mode input that is
   * not a constant false) is refused: its mask would have to be reused, and a train-step graph
   * should not depend on ORT's random stream.
   */
  public static List<Optional<Value>> dropout(GradBuilder b, Node n, List<Value> g) {
    Value mode = n.input(2);
    if (mode != null) {
      Optional<long[]> m = GradBuilder.constantInts(mode);
      if (m.isEmpty() || m.get().length != 1 || m.get()[0] != 0) {
        throw b.fail(
            "only inference-mode Dropout is supported, and training_mode '"
                + mode.name()
                + "' is not a constant false. Set it to false, or remove the Dropout.");
      }
    }
    if (g.get(0) == null) throw b.fail("only Dropout's first output can carry a gradient.");
    return grads(some(g.get(0)));
  }
}
