package dev.graft.ir.convert;

import static dev.graft.ir.convert.DowngradeRule.crossesDown;

import dev.graft.ir.Attr;
import dev.graft.ir.Constants;
import dev.graft.ir.Node;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * The reverse of {@link SplitRule}. Below 18 an equal split has no {@code num_outputs}: the output
 * count says it (the old schema needs the axis to divide evenly, which is what an opset-17 model
 * upgraded by Graft had). Below 13 constant split sizes move back to the attribute; sizes computed
 * at run time are refused.
 */
final class SplitDowngradeRule implements DowngradeRule {

  @Override
  public Optional<String> refusal(Node node, long from, long to, UpgradeContext ctx) {
    if (crossesDown(from, to, 13) && node.hasInput(1) && Constants.longsOf(node.input(1)).isEmpty()) {
      return Optional.of(
          "its split sizes ('" + node.input(1).name() + "') are computed at run time, and below"
              + " opset 13 they are a constant attribute. Keep the model at opset 13 or newer.");
    }
    return Optional.empty();
  }

  @Override
  public String apply(Node node, long from, long to, UpgradeContext ctx) {
    List<String> did = new ArrayList<>();
    if (crossesDown(from, to, 18) && node.hasAttr("num_outputs")) {
      node.removeAttr("num_outputs");
      did.add("num_outputs dropped (equal split by output count)");
    }
    if (crossesDown(from, to, 13) && node.hasInput(1)) {
      long[] split = Constants.longsOf(node.input(1)).orElseThrow();
      node.truncateInputs(1);
      node.setAttr(Attr.ints("split", split));
      did.add("split input -> attribute");
    }
    return String.join(", ", did);
  }
}
