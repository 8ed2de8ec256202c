package dev.graft.rewrite.decompose;

import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.rewrite.decompose.ContribDecomposition.Unsupported;
import java.util.Arrays;
import java.util.List;

/**
 * RMSNorm's two fused forms in standard ops:
 *
 * <pre>
 *   SimplifiedLayerNormalization(x, w; axis=-1, epsilon)  =>  y = w * x / sqrt(mean(x^2) + eps)
 *   SkipSimplifiedLayerNormalization(x, skip, w[, bias])  =>  t = x + skip (+ bias); y = rms(t) * w; output 3 = t
 * </pre>
 *
 * The statistics outputs (inverse std) are not rebuilt; a graph that reads them keeps the op.
 */
final class SimplifiedNorms {
  private SimplifiedNorms() {}

  static List<Value> simplified(GraphBuilder b, Model m, Node n) {
    long axis = n.attrLong("axis", -1);
    if (axis != -1 && !lastAxis(n.input(0), axis)) throw new Unsupported("normalises over axis " + axis + ", not the last");
    if (readsOutput(n, 1) || readsOutput(n, 2)) throw new Unsupported("its statistics outputs are read");
    float eps = n.attrFloat("epsilon", 1e-5f);
    return Arrays.asList(ContribDecomposition.rms(b, m, n.input(0), n.input(1), eps));
  }

  static List<Value> skipSimplified(GraphBuilder b, Model m, Node n) {
    if (readsOutput(n, 1) || readsOutput(n, 2)) throw new Unsupported("its statistics outputs are read");
    float eps = n.attrFloat("epsilon", 1e-5f);
    Value sum = b.op("Add", n.input(0), n.input(1));
    if (n.input(3) != null) sum = b.op("Add", sum, n.input(3));
    Value y = ContribDecomposition.rms(b, m, sum, n.input(2), eps);
    return Arrays.asList(y, null, null, sum);
  }

  private static boolean readsOutput(Node n, int i) {
    Value v = i < n.outputs().size() ? n.outputs().get(i) : null;
    return v != null && (v.hasUses() || v.isGraphOutput());
  }

  private static boolean lastAxis(Value x, long axis) {
    return x.shape().map(s -> axis == s.rank() - 1).orElse(false);
  }
}
