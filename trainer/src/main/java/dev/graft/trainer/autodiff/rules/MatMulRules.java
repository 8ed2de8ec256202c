package dev.graft.trainer.autodiff.rules;

import static dev.graft.trainer.autodiff.GradBuilder.grads;
import static dev.graft.trainer.autodiff.GradBuilder.none;
import static dev.graft.trainer.autodiff.GradBuilder.some;

import dev.graft.ir.Attr;
import dev.graft.ir.Dim;
import dev.graft.ir.Node;
import dev.graft.ir.Shape;
import dev.graft.ir.Value;
import dev.graft.trainer.autodiff.GradBuilder;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Gradients of MatMul (numpy semantics: batched, broadcast, 1-D promotion) and Gemm.
 *
 * <pre>
 *   Y = A @ B      dA = unb(G @ B^T)      dB = unb(A^T @ G)
 *   A [.., M, K], B [K, N] (a linear layer's weight): dB = Reshape(A, [-1, K])^T @ Reshape(G, [-1, N])
 * </pre>
 *
 * The weight case is one 2-D MatMul over the flattened batch instead of a batched product and a
 * ReduceSum over the batch, which is both fewer nodes and one large GEMM.
 */
public final class MatMulRules {
  private MatMulRules() {}

  public static List<Optional<Value>> matmul(GradBuilder b, Node n, List<Value> g) {
    Value a = n.input(0);
    Value w = n.input(1);
    Value gy = g.get(0);
    String why = "MatMul's gradient depends on whether its inputs are vectors";
    int ra = b.rank(a, why);
    int rb = b.rank(w, why);
    if (ra == 1 && rb == 1) {
      // A dot product: y is a scalar.
      return grads(
          b.needs(0) ? some(b.typedLike(b.mul(gy, w), a)) : none(),
          b.needs(1) ? some(b.typedLike(b.mul(gy, a), w)) : none());
    }
    // Promote vectors to matrices as numpy does, and the output gradient with them.
    Optional<Shape> ys = n.output().shape();
    Value ap = a;
    Value bp = w;
    Value gp = gy;
    Optional<Shape> gps = ys;
    if (ra == 1) {
      ap = b.typedShape(b.unsqueeze(a, 0), a, a.shape().map(s -> insert(s, 0, Dim.of(1))));
      gp = b.unsqueeze(gy, -2);
      gps = ys.map(s -> insert(s, s.rank() - 1, Dim.of(1)));
    }
    if (rb == 1) {
      bp = b.typedShape(b.unsqueeze(w, -1), w, w.shape().map(s -> insert(s, 1, Dim.of(1))));
      gp = b.unsqueeze(gp, -1);
      gps = gps.map(s -> insert(s, s.rank(), Dim.of(1)));
    }
    b.typedShape(gp, gy, gps);
    final Value apF = ap;
    final Optional<Shape> gpsF = gps;
    int rap = Math.max(ra, 2);
    int rbp = Math.max(rb, 2);

    Optional<Value> da = none();
    if (b.needs(0)) {
      Value full = b.matmul(gp, b.transpose(bp, swapLast(rbp)));
      Optional<Shape> fs = gpsF.flatMap(s -> apF.shape().map(as -> replaceLast(s, as.dim(-1))));
      b.typedShape(full, a, fs);
      Value d = b.unbroadcast(full, fs, ap);
      da = some(ra == 1 ? b.reshapeLike(d, a) : d);
    }
    Optional<Value> db = none();
    if (b.needs(1)) {
      Value d;
      if (rbp == 2 && rap > 2) {
        Value k = lastDim(b, ap);
        Value nn = lastDim(b, gp);
        Value a2 = b.reshape(ap, b.op("Concat", List.of(b.ints(-1), k), Attr.of("axis", 0L)));
        Value g2 = b.reshape(gp, b.op("Concat", List.of(b.ints(-1), nn), Attr.of("axis", 0L)));
        d = b.typedLike(b.matmul(b.transpose(a2, 1, 0), g2), bp);
      } else {
        Value full = b.matmul(b.transpose(ap, swapLast(rap)), gp);
        Optional<Shape> fs =
            gpsF.flatMap(s -> apF.shape().map(as -> withLastTwo(s, as.dim(-1), s.dim(-1))));
        b.typedShape(full, w, fs);
        d = b.unbroadcast(full, fs, bp);
      }
      db = some(rb == 1 ? b.reshapeLike(d, w) : d);
    }
    return grads(da, db);
  }

  /** The last dim of {@code v} as a 1-D int64 of one element. */
  private static Value lastDim(GradBuilder b, Value v) {
    int r = v.shape().map(Shape::rank).orElse(-1);
    if (r > 0 && v.shape().get().dim(r - 1).isFixed()) return b.ints(v.shape().get().dim(r - 1).value());
    return b.op("Slice", b.shape(v), b.ints(-1), b.ints(Long.MAX_VALUE));
  }

  private static long[] swapLast(int rank) {
    long[] p = new long[rank];
    for (int i = 0; i < rank; i++) p[i] = i;
    p[rank - 2] = rank - 1;
    p[rank - 1] = rank - 2;
    return p;
  }

  private static Shape insert(Shape s, int at, Dim d) {
    List<Dim> dims = new ArrayList<>(s.dims());
    dims.add(at, d);
    return Shape.of(dims);
  }

  private static Shape replaceLast(Shape s, Dim d) {
    List<Dim> dims = new ArrayList<>(s.dims());
    dims.set(dims.size() - 1, d);
    return Shape.of(dims);
  }

  private static Shape withLastTwo(Shape s, Dim d1, Dim d2) {
    List<Dim> dims = new ArrayList<>(s.dims());
    dims.set(dims.size() - 2, d1);
    dims.set(dims.size() - 1, d2);
    return Shape.of(dims);
  }

  /**
   * Y = alpha * A' @ B' + beta * C, A' = transA ? A^T : A, B' likewise. Each gradient is one Gemm
   * with the transposes folded into its flags.
   */
  public static List<Optional<Value>> gemm(GradBuilder b, Node n, List<Value> g) {
    Value a = n.input(0);
    Value w = n.input(1);
    Value c = n.input(2);
    Value gy = g.get(0);
    float alpha = n.attrFloat("alpha", 1f);
    float beta = n.attrFloat("beta", 1f);
    boolean ta = n.attrLong("transA", 0) != 0;
    boolean tb = n.attrLong("transB", 0) != 0;
    Optional<Value> da = none();
    if (b.needs(0)) {
      Value d =
          ta
              ? gemm(b, w, gy, alpha, tb, true)
              : gemm(b, gy, w, alpha, false, !tb);
      da = some(b.typedLike(d, a));
    }
    Optional<Value> db = none();
    if (b.needs(1)) {
      Value d =
          tb
              ? gemm(b, gy, a, alpha, true, ta)
              : gemm(b, a, gy, alpha, !ta, false);
      db = some(b.typedLike(d, w));
    }
    Optional<Value> dc = none();
    if (c != null && b.needs(2)) {
      Value scaled = beta == 1f ? gy : b.mul(gy, b.scalar(beta, gy));
      dc = some(b.unbroadcast(scaled, n.output(), c));
    }
    return c == null ? grads(da, db) : grads(da, db, dc);
  }

  private static Value gemm(GradBuilder b, Value x, Value y, float alpha, boolean tx, boolean ty) {
    return b.op(
        "Gemm",
        List.of(x, y),
        Attr.of("alpha", alpha),
        Attr.of("transA", tx ? 1L : 0L),
        Attr.of("transB", ty ? 1L : 0L));
  }
}
