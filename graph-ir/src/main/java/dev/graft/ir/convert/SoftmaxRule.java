package dev.graft.ir.convert;

import static dev.graft.ir.convert.UpgradeRule.crosses;

import dev.graft.ir.Attr;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * Softmax, LogSoftmax and Hardmax at opset 13. Before 13 they coerce the input to 2-D at {@code
 * axis} (default 1) and normalise over everything from {@code axis} on; from 13 they normalise
 * over the one axis {@code axis} (default -1). Both agree when {@code axis} is the last axis, and
 * then the node only gets its axis written out. Otherwise the old coercion is made explicit:
 *
 * <pre>
 *   y = Softmax[axis=k](x)   =>   y = Reshape(Softmax[axis=1](Flatten[axis=k](x)), Shape(x))
 * </pre>
 */
final class SoftmaxRule implements UpgradeRule {
  private static final long CHANGED_AT = 13;

  @Override
  public Optional<String> refusal(Node node, long from, long to) {
    if (crosses(from, to, CHANGED_AT) && node.attr("axis").map(Attr::isReference).orElse(false)) {
      return Optional.of(
          "its axis is the function attribute reference '"
              + node.attr("axis").get().refAttrName()
              + "', so whether the opset-13 semantics differ is unknown. Give the axis as a constant.");
    }
    return Optional.empty();
  }

  @Override
  public String apply(Node node, long from, long to, UpgradeContext ctx) {
    if (!crosses(from, to, CHANGED_AT)) return "";
    boolean explicit = node.hasAttr("axis");
    long axis = node.attrLong("axis", 1);
    Value x = node.input(0);
    OptionalInt rank = ctx.rank(x);
    boolean last = axis == -1 || (rank.isPresent() && axis == rank.getAsInt() - 1);
    if (last) {
      if (explicit) return "";
      node.setAttr(Attr.of("axis", axis));
      return "axis " + axis + " is the last axis: old default axis written out";
    }
    String op = node.opType();
    Node flatten =
        new Node("", "Flatten", List.of(x), List.of(ctx.freshValueName(node, "flat")),
            List.of(Attr.of("axis", axis)), ctx.nodeName(node, "Flatten"));
    ctx.insertBefore(node, flatten);
    List<Attr> attrs = new ArrayList<>();
    for (Attr a : node.attributes().values()) {
      if (!a.name().equals("axis")) attrs.add(a);
    }
    attrs.add(Attr.of("axis", 1L));
    Node normalised =
        new Node(node.rawDomain(), op, List.of(flatten.output()),
            List.of(ctx.freshValueName(node, "2d")), attrs, node.rawName());
    ctx.insertBefore(node, normalised);
    Node shape =
        new Node("", "Shape", List.of(x), List.of(ctx.freshValueName(node, "shape")), List.of(),
            ctx.nodeName(node, "Shape"));
    ctx.insertBefore(node, shape);
    Node reshape =
        new Node("", "Reshape", List.of(normalised.output(), shape.output()),
            List.of(ctx.freshValueName(node, "nd")), List.of(), ctx.nodeName(node, "Reshape"));
    ctx.insertBefore(node, reshape);
    ctx.replaceNode(node, List.of(reshape.output()));
    return "axis " + axis + (rank.isPresent() ? " of rank " + rank.getAsInt() : " of unknown rank")
        + ": 2-D coercion made explicit (Flatten -> " + op + "[axis=1] -> Reshape)";
  }
}
