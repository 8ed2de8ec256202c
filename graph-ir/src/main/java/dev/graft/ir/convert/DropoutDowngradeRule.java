package dev.graft.ir.convert;

import static dev.graft.ir.convert.DowngradeRule.crossesDown;

import dev.graft.ir.Attr;
import dev.graft.ir.Constants;
import dev.graft.ir.Node;
import java.util.Optional;

/**
 * The reverse of {@link DropoutRule}: below 12 the ratio is an attribute again and there is no
 * training_mode input (Dropout then always runs in inference mode). A constant ratio moves back;
 * a training_mode input is refused.
 */
final class DropoutDowngradeRule implements DowngradeRule {

  @Override
  public Optional<String> refusal(Node node, long from, long to, UpgradeContext ctx) {
    if (!crossesDown(from, to, 12)) return Optional.empty();
    if (node.hasInput(2)) {
      return Optional.of("it has a training_mode input, which opset 11 lacks. Keep the model at opset 12 or newer.");
    }
    if (node.hasInput(1) && Constants.valueOf(node.input(1)).isEmpty()) {
      return Optional.of("its ratio is computed at run time; opset 11 needs a constant. Keep the model at opset 12 or newer.");
    }
    return Optional.empty();
  }

  @Override
  public String apply(Node node, long from, long to, UpgradeContext ctx) {
    if (!crossesDown(from, to, 12) || !node.hasInput(1)) return "";
    float ratio = Constants.valueOf(node.input(1)).orElseThrow().toFloatArray()[0];
    node.truncateInputs(1);
    node.setAttr(Attr.of("ratio", ratio));
    return "ratio input -> attribute";
  }
}
