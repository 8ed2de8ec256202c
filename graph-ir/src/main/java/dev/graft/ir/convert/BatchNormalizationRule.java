package dev.graft.ir.convert;

import static dev.graft.ir.convert.UpgradeRule.crosses;

import dev.graft.ir.Attr;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * BatchNormalization at 14. Before 14, the number of outputs chose the mode: Y alone is inference;
 * Y with (mean, var, saved_mean, saved_var) is training, normalising with the batch statistics
 * (ONNX Runtime follows this). From 14 a {@code training_mode} attribute chooses, and the optional
 * outputs are (running_mean, running_var), the old mean and var; saved_mean and saved_var are gone.
 *
 * <pre>
 *   Y, m, v, sm, sv = BN(x, ...)            (sm, sv unused)
 *     =>  Y, m, v = BN[training_mode=1](x, ...)
 * </pre>
 *
 * A one-output node is a plain bump; a node whose saved_mean or saved_var is read is refused. (At
 * 15 only the type lists widened.)
 */
final class BatchNormalizationRule implements UpgradeRule {

  @Override
  public Optional<String> refusal(Node node, long from, long to) {
    if (!crosses(from, to, 14)) return Optional.empty();
    for (int i = 3; i < node.outputs().size(); i++) {
      Value o = node.output(i);
      if (o != null && (o.hasUses() || o.isGraphOutput())) {
        return Optional.of(
            "its output "
                + i
                + " '"
                + o.name()
                + "' (saved_mean or saved_var) is read, and opset 14 removed those outputs."
                + " Remove that use, or keep the model at opset "
                + Math.min(from, 13)
                + ".");
      }
    }
    return Optional.empty();
  }

  @Override
  public String apply(Node node, long from, long to, UpgradeContext ctx) {
    if (!crosses(from, to, 14) || node.outputs().size() == 1) return "";
    int kept = Math.min(3, node.outputs().size());
    List<String> names = new ArrayList<>();
    for (int i = 0; i < kept; i++) {
      names.add(node.output(i) == null ? null : ctx.freshValueName(node, "bn" + i));
    }
    List<Attr> attrs = new ArrayList<>(node.attributes().values());
    attrs.add(Attr.of("training_mode", 1L));
    Node replacement = ctx.copyOf(node, node.opType(), names, attrs);
    ctx.insertBefore(node, replacement);
    List<Value> replacements = new ArrayList<>(replacement.outputs());
    while (replacements.size() < node.outputs().size()) replacements.add(null);
    ctx.replaceNode(node, replacements);
    return "training form (" + node.outputs().size() + " outputs) -> training_mode=1 with "
        + kept + " outputs";
  }
}
