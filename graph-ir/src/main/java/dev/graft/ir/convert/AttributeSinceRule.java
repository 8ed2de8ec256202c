package dev.graft.ir.convert;

import static dev.graft.ir.convert.DowngradeRule.crossesDown;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Attr;
import dev.graft.ir.Node;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * An op whose newer versions only added attributes or optional inputs. Going below the version
 * that added one: an attribute at its default is dropped (the old schema means the same without
 * it), any other value is refused; a present optional input is refused.
 *
 * <pre>
 *   y = Reshape[allowzero=0](x, s)  --opset 13-->  y = Reshape(x, s)
 *   y = Reshape[allowzero=1](x, s)  --opset 13-->  refused: allowzero=1 needs opset 14
 * </pre>
 */
final class AttributeSinceRule implements DowngradeRule {
  /** Attribute {@code name}, added at {@code since}; {@code dflt} its default as Attr#toString
   * prints the value, or null when only absence means the old behaviour. */
  record Added(String name, long since, String dflt) {}

  /** Optional input {@code index}, added at {@code since}. */
  record AddedInput(int index, String name, long since) {}

  private final ImmutableList<Added> attrs;
  private final ImmutableList<AddedInput> inputs;

  AttributeSinceRule(List<Added> attrs, List<AddedInput> inputs) {
    this.attrs = ImmutableList.copyOf(attrs);
    this.inputs = ImmutableList.copyOf(inputs);
  }

  static AttributeSinceRule attrs(Added... a) {
    return new AttributeSinceRule(List.of(a), List.of());
  }

  @Override
  public Optional<String> refusal(Node node, long from, long to, UpgradeContext ctx) {
    for (Added a : attrs) {
      if (!crossesDown(from, to, a.since()) || !node.hasAttr(a.name())) continue;
      Attr v = node.attr(a.name()).get();
      if (v.isReference() || a.dflt() == null || !value(v).equals(a.dflt())) {
        String shown = v.isReference() ? "@" + v.refAttrName() : value(v);
        return Optional.of(
            "it sets " + a.name() + "=" + shown + ", which only opset " + a.since()
                + " and newer understand. Keep the model at opset " + a.since() + " or newer.");
      }
    }
    for (AddedInput in : inputs) {
      if (crossesDown(from, to, in.since()) && node.hasInput(in.index())) {
        return Optional.of(
            "it has the input '" + in.name() + "', which only opset " + in.since()
                + " and newer have. Keep the model at opset " + in.since() + " or newer.");
      }
    }
    return Optional.empty();
  }

  @Override
  public String apply(Node node, long from, long to, UpgradeContext ctx) {
    List<String> did = new ArrayList<>();
    for (Added a : attrs) {
      if (crossesDown(from, to, a.since()) && node.hasAttr(a.name())) {
        node.removeAttr(a.name());
        did.add(a.name() + "=" + a.dflt() + " (the default) dropped");
      }
    }
    return String.join(", ", did);
  }

  private static String value(Attr a) {
    return switch (a.type()) {
      case INT -> Long.toString(a.asLong());
      case FLOAT -> Float.toString(a.asFloat());
      case STRING -> a.asString();
      case INTS -> java.util.Arrays.toString(a.asLongs());
      default -> a.toString();
    };
  }
}
