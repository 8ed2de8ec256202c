package dev.graft.ir.convert;

import dev.graft.ir.Node;
import java.util.List;

/**
 * Scatter, deprecated at 11 in favour of ScatterElements with the same inputs and {@code axis}:
 * the node is rebuilt under the new name.
 */
final class ScatterRule implements UpgradeRule {

  @Override
  public String apply(Node node, long from, long to, UpgradeContext ctx) {
    Node replacement =
        ctx.copyOf(node, "ScatterElements", List.of(ctx.freshValueName(node, "scattered")),
            List.copyOf(node.attributes().values()));
    ctx.insertBefore(node, replacement);
    ctx.replaceNode(node, List.of(replacement.output()));
    return "deprecated Scatter -> ScatterElements";
  }
}
