package dev.graft.ir.convert;

import static dev.graft.ir.convert.UpgradeRule.crosses;

import dev.graft.ir.Attr;
import dev.graft.ir.Node;
import dev.graft.ir.tensor.DenseTensor;
import java.util.Optional;

/**
 * DFT at 20: the {@code axis} attribute (default 1) became an optional scalar input (default -2).
 * The old axis, default included, moves to input 2, so the new default never applies.
 */
final class DftRule implements UpgradeRule {

  @Override
  public Optional<String> refusal(Node node, long from, long to) {
    if (crosses(from, to, 20) && node.attr("axis").map(Attr::isReference).orElse(false)) {
      return Optional.of("its axis is a function attribute reference; give it as a constant.");
    }
    return Optional.empty();
  }

  @Override
  public String apply(Node node, long from, long to, UpgradeContext ctx) {
    if (!crosses(from, to, 20)) return "";
    long axis = node.attrLong("axis", 1);
    node.removeAttr("axis");
    while (node.inputCount() < 2) node.appendInput(null);
    node.truncateInputs(2);
    node.appendInput(ctx.constant(node, "axis", DenseTensor.scalar("axis", axis)));
    return "axis " + axis + " attribute -> input";
  }
}
