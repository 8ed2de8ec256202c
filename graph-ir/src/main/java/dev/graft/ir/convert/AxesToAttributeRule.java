package dev.graft.ir.convert;

import static dev.graft.ir.convert.DowngradeRule.crossesDown;

import dev.graft.ir.Attr;
import dev.graft.ir.Constants;
import dev.graft.ir.Node;
import java.util.Optional;

/**
 * The reverse of {@link AxesToInputRule}: below opset 13 (ReduceSum, Squeeze, Unsqueeze) or 18
 * (the other Reduce ops) {@code axes} is an attribute again. A constant axes input moves back to
 * the attribute; axes computed at run time have no older form and are refused, and so is
 * {@code noop_with_empty_axes=1}, which the old schema cannot say.
 *
 * <pre>
 *   y = ReduceMean(x, axes) with constant axes = [-1]   =>   y = ReduceMean[axes=[-1]](x)
 * </pre>
 */
final class AxesToAttributeRule implements DowngradeRule {
  private final long changedAt;

  AxesToAttributeRule(long changedAt) {
    this.changedAt = changedAt;
  }

  @Override
  public Optional<String> refusal(Node node, long from, long to, UpgradeContext ctx) {
    if (!crossesDown(from, to, changedAt)) return Optional.empty();
    if (node.attrLong("noop_with_empty_axes", 0) != 0) {
      return Optional.of(
          "it sets noop_with_empty_axes=1, which opsets below " + changedAt
              + " cannot express. Keep the model at opset " + changedAt + " or newer.");
    }
    if (node.hasInput(1) && Constants.longsOf(node.input(1)).isEmpty()) {
      return Optional.of(
          "its axes ('" + node.input(1).name() + "') are computed at run time, and below opset "
              + changedAt + " axes are a constant attribute. Keep the model at opset " + changedAt
              + " or newer.");
    }
    return Optional.empty();
  }

  @Override
  public String apply(Node node, long from, long to, UpgradeContext ctx) {
    if (!crossesDown(from, to, changedAt)) return "";
    node.removeAttr("noop_with_empty_axes");
    if (!node.hasInput(1)) return "";
    long[] axes = Constants.longsOf(node.input(1)).orElseThrow();
    node.truncateInputs(1);
    // Empty axes with noop_with_empty_axes=0 mean "all axes", as an absent attribute does.
    if (axes.length > 0) node.setAttr(Attr.ints("axes", axes));
    return "axes input -> attribute (opset < " + changedAt + ")";
  }
}
