package dev.graft.ir.convert;

import static dev.graft.ir.convert.UpgradeRule.crosses;

import dev.graft.ir.Attr;
import dev.graft.ir.Node;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Split: at 13 the {@code split} sizes attribute became an optional input; at 18 a Split without
 * sizes must say {@code num_outputs}. Given sizes keep the input form (exact for uneven splits);
 * an equal split gets {@code num_outputs} = its output count, which means the same when the axis
 * divides evenly, the only case the old schema allowed.
 */
final class SplitRule implements UpgradeRule {

  @Override
  public Optional<String> refusal(Node node, long from, long to) {
    if (crosses(from, to, 13) && node.attr("split").map(Attr::isReference).orElse(false)) {
      return Optional.of("its split sizes are a function attribute reference; give them as constants.");
    }
    return Optional.empty();
  }

  @Override
  public String apply(Node node, long from, long to, UpgradeContext ctx) {
    List<String> did = new ArrayList<>();
    if (crosses(from, to, 13)) {
      Optional<long[]> split = node.attrLongs("split");
      if (split.isPresent()) {
        node.removeAttr("split");
        node.truncateInputs(1);
        node.appendInput(ctx.int64s(node, "split", split.get()));
        did.add("split attribute -> input");
      }
    }
    if (crosses(from, to, 18) && !node.hasInput(1) && !node.hasAttr("num_outputs")) {
      node.truncateInputs(1);
      node.setAttr(Attr.of("num_outputs", (long) node.outputs().size()));
      did.add("equal split -> num_outputs=" + node.outputs().size());
    }
    return String.join(", ", did);
  }
}
