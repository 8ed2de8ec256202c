package dev.graft.trainer.train;

import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Shape;
import dev.graft.ir.Use;
import dev.graft.ir.Value;
import java.util.List;
import java.util.Optional;

/**
 * Folds the transpose of a frozen weight into the backward MatMul that reads it, in the training
 * copy only ({@code Backprop}'s rules stay in standard ops):
 *
 * <pre>
 *   forward:  y = MatMul(x, W)                W a frozen initializer [K, N]
 *   backward: dx = MatMul(dy, Transpose(W))   (the MatMul rule, perm [1, 0])
 *     =>      dx = com.microsoft.FusedMatMul(dy, W, transB = 1)
 * </pre>
 *
 * ORT constant-folds {@code Transpose(W)} into a new initializer and pre-packs it for its MatMul,
 * so without this the session holds a transposed copy of every frozen linear weight beside the
 * packed original (and, over {@link dev.graft.ir.io.SessionFile#LARGE_WEIGHTS}, where folding is
 * off, transposes every weight on every step). FusedMatMul is ORT's MatMul kernel with transpose
 * flags (a contrib op of every ORT build, CPU and CUDA): it pre-packs W itself, read as W^T, and
 * computes the same product. Only float32 weights of rank 2 read by a MatMul whose other operand
 * has rank 2 or more are rewritten; the model gains the import {@code com.microsoft} version 1 when
 * something is.
 */
public final class FrozenWeightTransposes {
  private FrozenWeightTransposes() {}

  /** Rewrites every candidate in {@code m}'s main graph; returns how many MatMuls were rewritten. */
  public static int fuse(Model m) {
    Graph g = m.graph();
    int fused = 0;
    for (Node t : List.copyOf(g.nodes())) {
      if (!t.isIn(g) || !t.is("Transpose")) continue;
      Value w = t.input(0);
      if (!isFrozenMatrix(g, w) || !swapsTwoDims(t) || t.output().isGraphOutput()) continue;
      for (Use u : List.copyOf(t.output().uses())) {
        Node mm = u.node();
        if (u.index() != 1 || !mm.is("MatMul") || !mm.isIn(g)) continue;
        if (rank(mm.input(0)) < 2) continue;
        rewrite(g, mm, w);
        fused++;
      }
      if (!t.output().hasUses()) g.removeNode(t);
    }
    if (fused > 0) GeluFusion.importDomain(m);
    return fused;
  }

  private static void rewrite(Graph g, Node mm, Value w) {
    Value y = mm.output();
    String name = y.name();
    String nodeName = mm.name().isEmpty() ? g.freshName("FusedMatMul") : mm.name();
    Node f =
        new Node(
            GeluFusion.DOMAIN,
            "FusedMatMul",
            List.of(mm.input(0), w),
            List.of(g.freshName(name + "_fused")),
            List.of(Attr.of("transB", 1L)),
            nodeName);
    g.insertBefore(mm, f);
    g.replaceValue(y, f.output(), List.of(mm));
  }

  /** A float32 initializer of rank 2 that no graph input overrides. */
  private static boolean isFrozenMatrix(Graph g, Value w) {
    return w != null
        && w.isInitializer()
        && !w.isGraphInput()
        && g.initializer(w.name()).orElse(null) == w
        && w.initializer().map(i -> i.dataType() == DataType.FLOAT && i.dims().length == 2).orElse(false);
  }

  /** Transpose of a matrix: perm [1, 0], or no perm (which reverses the two dims). */
  private static boolean swapsTwoDims(Node t) {
    Optional<long[]> perm = t.attrLongs("perm");
    return perm.isEmpty() || (perm.get().length == 2 && perm.get()[0] == 1 && perm.get()[1] == 0);
  }

  private static int rank(Value v) {
    return v == null ? -1 : v.shape().map(Shape::rank).orElse(-1);
  }
}
