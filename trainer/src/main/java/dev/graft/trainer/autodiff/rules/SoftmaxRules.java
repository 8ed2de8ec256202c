package dev.graft.trainer.autodiff.rules;

import static dev.graft.trainer.autodiff.GradBuilder.grads;
import static dev.graft.trainer.autodiff.GradBuilder.none;
import static dev.graft.trainer.autodiff.GradBuilder.some;

import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Node;
import dev.graft.ir.Shape;
import dev.graft.ir.Value;
import dev.graft.trainer.autodiff.GradBuilder;
import java.util.List;
import java.util.Optional;

/**
 * Gradients of Softmax, LogSoftmax (opset 13 semantics: one axis) and SoftmaxCrossEntropyLoss.
 *
 * <pre>
 *   y = Softmax(x)      dx = y * (g - ReduceSum(g * y, axis))
 *                       (attention's: ReduceSum(dc * c, -1) for ReduceSum(g * y), c = MatMul(y, v))
 *   y = LogSoftmax(x)   dx = g - exp(y) * ReduceSum(g, axis)
 *   l = SCE(s, t)       ds = (Softmax(s, 1) - onehot(t)) * coef,  coef from reduction, weights, ignore_index
 * </pre>
 */
public final class SoftmaxRules {
  private SoftmaxRules() {}

  /** One axis, as Softmax has from opset 13 ({@link dev.graft.trainer.autodiff.Backprop} runs at 17 or newer). */
  private static long axis(GradBuilder b, Node n) {
    return n.attrLong("axis", -1);
  }

  public static List<Optional<Value>> softmax(GradBuilder b, Node n, List<Value> g) {
    long axis = axis(b, n);
    Value y = n.output();
    Value gy = g.get(0);
    Value s = attentionRowDot(b, n, gy).orElseGet(() -> b.reduceSum(b.mul(gy, y), new long[] {axis}, true));
    return grads(some(b.typedLike(b.mul(y, b.sub(gy, s)), n.input(0))));
  }

  /**
   * False under {@code -Dgraft.train.softmaxRowDot=0}: attention's softmax gradient sums {@code g *
   * y} over the scores as any softmax's does (for A/B runs).
   */
  static boolean rowDotEnabled() {
    return !"0".equals(System.getProperty("graft.train.softmaxRowDot", "1"));
  }

  /**
   * {@code ReduceSum(g * y, last axis)} of attention's softmax, read off the product that follows
   * it. Where y's only reader is {@code c = MatMul(y, v)} and g is that product's own input
   * gradient {@code dc @ v^T} (no reduction over broadcast axes in between):
   *
   * <pre>
   *   sum_j g_ij y_ij = sum_j y_ij sum_k dc_ik v_jk = sum_k dc_ik c_ik
   * </pre>
   *
   * so the product and the sum run over c's {@code [.., s, d]} instead of the scores' {@code [..,
   * s, s]} (a quarter of it with 32-wide heads at 128 tokens), and c is kept for the backward pass
   * instead (the identity FlashAttention's backward uses). Empty where the pattern does not hold.
   */
  static Optional<Value> attentionRowDot(GradBuilder b, Node n, Value gy) {
    if (!rowDotEnabled()) return Optional.empty();
    Value y = n.output();
    int rank = y.shape().map(Shape::rank).orElse(-1);
    long axis = axis(b, n);
    if (rank < 2 || (axis != -1 && axis != rank - 1)) return Optional.empty();
    List<Node> readers = b.forwardReaders(y);
    if (readers.size() != 1) return Optional.empty();
    Node m = readers.get(0);
    if (!m.is("MatMul") || m.input(0) != y || m.input(1) == y) return Optional.empty();
    Value v = m.input(1);
    if (v.shape().map(Shape::rank).orElse(-1) != rank) return Optional.empty();
    Optional<Value> dc = b.gradientOf(m.output());
    Node gp = gy.producer().orElse(null);
    if (dc.isEmpty() || gp == null || !gp.is("MatMul") || gp.input(0) != dc.get()) return Optional.empty();
    Node t = gp.input(1).producer().orElse(null);
    if (t == null || !t.is("Transpose") || t.input(0) != v) return Optional.empty();
    return Optional.of(b.reduceSum(b.mul(dc.get(), m.output()), new long[] {-1}, true));
  }

  public static List<Optional<Value>> logSoftmax(GradBuilder b, Node n, List<Value> g) {
    long axis = axis(b, n);
    Value y = n.output();
    Value gy = g.get(0);
    Value s = b.reduceSum(gy, new long[] {axis}, true);
    return grads(some(b.typedLike(b.sub(gy, b.mul(b.op("Exp", y), s)), n.input(0))));
  }

  /**
   * Scores [N, C, d...], labels [N, d...], optional class weights [C]. Per element, the loss is
   * -w[t] * log_softmax(s)[t]; reduction 'mean' divides by the sum of the weights of the elements
   * not ignored (their count without weights), as the operator does.
   */
  public static List<Optional<Value>> softmaxCrossEntropyLoss(GradBuilder b, Node n, List<Value> g) {
    if (b.needs(2)) {
      throw b.fail("the class weights depend on a trainable parameter; freeze them.");
    }
    Value scores = n.input(0);
    Value labels = n.input(1);
    Value weights = n.input(2);
    String reduction = n.attrString("reduction", "mean");
    Optional<Long> ignore =
        n.hasAttr("ignore_index") ? Optional.of(n.attrLong("ignore_index", 0)) : Optional.empty();
    int r = b.rank(scores, "the one-hot labels are laid out along axis 1 of the scores");

    Value p = b.op("Softmax", List.of(scores), Attr.of("axis", 1L));
    if (labels.dataType().orElse(null) != DataType.INT64) labels = b.cast(labels, DataType.INT64);
    Value classes = b.op("Range", b.intScalar(0), b.dimOf(scores, 1), b.intScalar(1));
    if (r > 2) classes = b.unsqueeze(classes, GradBuilder.axesFrom(1, r - 1));
    Value onehot = b.op("CastLike", b.op("Equal", b.unsqueeze(labels, 1), classes), scores);

    Value ds = null;
    Value gl = g.get(0);
    if (gl != null) {
      Value ew = null;
      if (weights != null) {
        Value safe =
            ignore.isPresent()
                ? b.where(b.op("Equal", labels, b.intScalar(ignore.get())), b.intScalar(0), labels)
                : labels;
        ew = b.op("Gather", List.of(weights, safe), Attr.of("axis", 0L));
      }
      if (ignore.isPresent()) {
        Value keep =
            b.op("CastLike", b.op("Not", b.op("Equal", labels, b.intScalar(ignore.get()))), scores);
        ew = ew == null ? keep : b.mul(ew, keep);
      }
      Value coef;
      boolean perElement;
      switch (reduction) {
        case "none" -> {
          coef = ew == null ? gl : b.mul(gl, ew);
          perElement = true;
        }
        case "sum" -> {
          coef = ew == null ? gl : b.mul(gl, ew);
          perElement = ew != null;
        }
        case "mean" -> {
          if (ew == null) {
            Optional<Long> numel = labels.shape().flatMap(Shape::numElements);
            Value count =
                numel.isPresent()
                    ? b.scalar(numel.get(), scores)
                    : b.op("CastLike", b.op("Size", labels), scores);
            coef = b.div(gl, count);
            perElement = false;
          } else {
            Value total = b.op("ReduceSum", List.of(ew), Attr.of("keepdims", 0L));
            coef = b.div(b.mul(gl, ew), total);
            perElement = true;
          }
        }
        default -> throw b.fail("unknown reduction '" + reduction + "'.");
      }
      Value c = perElement ? b.unsqueeze(coef, 1) : coef;
      ds = b.mul(b.sub(p, onehot), c);
    }
    if (n.outputs().size() > 1 && g.get(1) != null) {
      // The log_prob output is LogSoftmax(scores, axis=1).
      Value g2 = g.get(1);
      Value d2 = b.sub(g2, b.mul(p, b.reduceSum(g2, new long[] {1}, true)));
      ds = ds == null ? d2 : b.add(ds, d2);
    }
    Optional<Value> d = some(b.typedLike(ds, scores));
    return weights == null ? grads(d, none()) : grads(d, none(), none());
  }
}
