package dev.graft.ir.convert;

import static dev.graft.ir.convert.UpgradeRule.crosses;

import dev.graft.ir.Node;
import dev.graft.ir.Value;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * BatchNormalization at 14: the optional outputs changed from (mean, var, saved_mean, saved_var),
 * defined only in training, to (running_mean, running_var) with a {@code training_mode}
 * attribute. Inference graphs leave those outputs unused; the node is then rebuilt with its one
 * output Y. A graph that reads them is a training graph the new schema cannot express as is.
 * (At 15 only the type lists widened.)
 */
final class BatchNormalizationRule implements UpgradeRule {

  @Override
  public Optional<String> refusal(Node node, long from, long to) {
    if (!crosses(from, to, 14)) return Optional.empty();
    for (int i = 1; i < node.outputs().size(); i++) {
      Value o = node.output(i);
      if (o != null && (o.hasUses() || o.isGraphOutput())) {
        return Optional.of(
            "its training output "
                + i
                + " '"
                + o.name()
                + "' is read, and opset 14 redefined those outputs (running statistics with"
                + " training_mode=1). Remove the use of the training outputs, or export the model"
                + " at opset 14 or newer.");
      }
    }
    return Optional.empty();
  }

  @Override
  public String apply(Node node, long from, long to, UpgradeContext ctx) {
    if (!crosses(from, to, 14)) return "";
    long present = node.outputs().stream().skip(1).filter(v -> v != null).count();
    if (present == 0 && node.outputs().size() == 1) return "";
    Node single =
        ctx.copyOf(node, node.opType(), List.of(ctx.freshValueName(node, "y")),
            List.copyOf(node.attributes().values()));
    ctx.insertBefore(node, single);
    List<Value> replacements = new ArrayList<>();
    replacements.add(single.output());
    for (int i = 1; i < node.outputs().size(); i++) replacements.add(null);
    ctx.replaceNode(node, replacements);
    return "unused training outputs dropped (" + present + ")";
  }
}
