package dev.graft.trainer.autodiff;

import dev.graft.ir.DataType;
import dev.graft.ir.Graph;
import dev.graft.ir.Node;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import java.util.List;
import java.util.Set;

/**
 * Before differentiating, gives each float32 LayerNormalization node on the gradient path the
 * optional Mean and InvStdDev outputs its kernel computes anyway, so that the gradient rule reads
 * the forward pass's statistics instead of recomputing them from X (two reductions and five
 * elementwise ops over the whole activation, per LayerNorm, per step):
 *
 * <pre>
 *   y = LayerNormalization[axis, eps](x, g, b)
 *     =>  y, mean, inv_std = LayerNormalization[axis, eps](x, g, b)      (same y, same name)
 * </pre>
 *
 * The node is replaced by an equal one with three outputs (a node never gains outputs in place);
 * its first output keeps the old name and uses. Only float32 inputs are exposed: the statistics'
 * element type is the stash type (float32 by default), so for float32 they need no Cast, while
 * other types keep the recomputing rule. Nodes that already have the outputs are left alone.
 */
final class SavedStatistics {
  private SavedStatistics() {}

  /** Exposes the statistics of each LayerNormalization in {@code nodes} whose Y is in {@code needs}. */
  static int expose(Graph g, List<Node> nodes, Set<Value> needs) {
    int changed = 0;
    for (Node n : nodes) {
      if (!n.is("LayerNormalization") || !n.domain().isEmpty() || n.outputs().size() != 1) continue;
      if (!needs.contains(n.output())) continue;
      if (n.input(0).dataType().orElse(null) != DataType.FLOAT) continue;
      if (n.attrLong("stash_type", 1) != 1) continue;
      replace(g, n);
      changed++;
    }
    return changed;
  }

  private static void replace(Graph g, Node n) {
    Value y = n.output();
    String name = y.name();
    String base = n.name().isEmpty() ? g.freshName("LayerNormalization") : n.name();
    Node withStats =
        new Node(
            "",
            "LayerNormalization",
            n.inputs(),
            List.of(g.freshName(name + "_y"), g.freshName(base + "/saved_mean"), g.freshName(base + "/saved_inv_std")),
            List.copyOf(n.attributes().values()),
            n.name());
    g.insertAfter(n, withStats);
    Type stats = Type.tensor(DataType.FLOAT);
    withStats.output(1).setType(stats);
    withStats.output(2).setType(stats);
    g.replaceValue(y, withStats.output(0), List.of(n));
  }
}
