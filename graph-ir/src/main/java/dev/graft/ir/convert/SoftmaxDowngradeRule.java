package dev.graft.ir.convert;

import static dev.graft.ir.convert.DowngradeRule.crossesDown;

import dev.graft.ir.Attr;
import dev.graft.ir.Node;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * The reverse of {@link SoftmaxRule}. From 13 Softmax, LogSoftmax and Hardmax normalise over one
 * axis (default -1); before 13 over everything from {@code axis} on (default 1). The two agree
 * when the axis is the last one, so the node gets that axis written out; over another axis the old
 * schema computes something else, and the downgrade refuses.
 *
 * <pre>
 *   y = Softmax(x)            (opset 13: axis -1)   =>   y = Softmax[axis=-1](x)   (opset 11)
 *   y = Softmax[axis=1](x), x rank 3                =>   refused
 * </pre>
 */
final class SoftmaxDowngradeRule implements DowngradeRule {
  private static final long CHANGED_AT = 13;

  @Override
  public Optional<String> refusal(Node node, long from, long to, UpgradeContext ctx) {
    if (!crossesDown(from, to, CHANGED_AT)) return Optional.empty();
    if (node.attr("axis").map(Attr::isReference).orElse(false)) {
      return Optional.of("its axis is a function attribute reference; give the axis as a constant.");
    }
    if (!last(node, ctx)) {
      return Optional.of(
          "it normalises over axis " + node.attrLong("axis", -1) + ", not provably the last one;"
              + " below opset 13 " + node.opType() + " normalises over all axes from there on."
              + " Keep the model at opset 13 or newer.");
    }
    return Optional.empty();
  }

  @Override
  public String apply(Node node, long from, long to, UpgradeContext ctx) {
    if (!crossesDown(from, to, CHANGED_AT)) return "";
    long axis = node.attrLong("axis", -1);
    node.setAttr(Attr.of("axis", axis));
    return "axis " + axis + " is the last axis: written out (old default 1)";
  }

  private static boolean last(Node node, UpgradeContext ctx) {
    long axis = node.attrLong("axis", -1);
    if (axis == -1) return true;
    OptionalInt rank = ctx.rank(node.input(0));
    return rank.isPresent() && axis == rank.getAsInt() - 1;
  }
}
