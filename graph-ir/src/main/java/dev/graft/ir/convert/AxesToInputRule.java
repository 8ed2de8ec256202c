package dev.graft.ir.convert;

import static dev.graft.ir.convert.UpgradeRule.crosses;

import dev.graft.ir.Attr;
import dev.graft.ir.Node;
import java.util.Optional;

/**
 * Ops whose {@code axes} attribute became an optional int64 input: ReduceSum, Squeeze and
 * Unsqueeze at 13, the other Reduce ops at 18. Absent axes keep their meaning (all axes for
 * Reduce, every size-1 axis for Squeeze), so only a present attribute moves.
 *
 * <pre>
 *   y = ReduceMean[axes=[-1]](x)   =>   y = ReduceMean(x, axes) with initializer axes = [-1]
 * </pre>
 */
final class AxesToInputRule implements UpgradeRule {
  private final long changedAt;

  AxesToInputRule(long changedAt) {
    this.changedAt = changedAt;
  }

  @Override
  public Optional<String> refusal(Node node, long from, long to) {
    if (crosses(from, to, changedAt) && node.attr("axes").map(Attr::isReference).orElse(false)) {
      return Optional.of(
          "its axes are the function attribute reference '"
              + node.attr("axes").get().refAttrName()
              + "', which cannot become a constant input. Give the axes as constants.");
    }
    return Optional.empty();
  }

  @Override
  public String apply(Node node, long from, long to, UpgradeContext ctx) {
    if (!crosses(from, to, changedAt)) return "";
    Optional<long[]> axes = node.attrLongs("axes");
    if (axes.isEmpty()) return "";
    node.removeAttr("axes");
    node.truncateInputs(1);
    node.appendInput(ctx.int64s(node, "axes", axes.get()));
    return "axes attribute -> input (opset " + changedAt + ")";
  }
}
