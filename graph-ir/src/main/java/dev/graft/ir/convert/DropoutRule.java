package dev.graft.ir.convert;

import static dev.graft.ir.convert.UpgradeRule.crosses;

import dev.graft.ir.Attr;
import dev.graft.ir.Node;
import java.util.Optional;

/**
 * Dropout at 12: the {@code ratio} attribute became an optional input (and training_mode a second
 * one, absent meaning inference, as before). The ratio moves to a float scalar initializer.
 */
final class DropoutRule implements UpgradeRule {

  @Override
  public Optional<String> refusal(Node node, long from, long to) {
    if (crosses(from, to, 12) && node.attr("ratio").map(Attr::isReference).orElse(false)) {
      return Optional.of("its ratio is a function attribute reference; give it as a constant.");
    }
    return Optional.empty();
  }

  @Override
  public String apply(Node node, long from, long to, UpgradeContext ctx) {
    if (!crosses(from, to, 12) || !node.hasAttr("ratio")) return "";
    float ratio = node.attrFloat("ratio", 0.5f);
    node.removeAttr("ratio");
    node.truncateInputs(1);
    node.appendInput(ctx.floatScalar(node, "ratio", ratio));
    return "ratio attribute -> input";
  }
}
