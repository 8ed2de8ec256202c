package dev.graft.ir.convert;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Function;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Writes a model at an older default-domain opset, for runtimes that do not load the newer one:
 * the reverse of {@link OpsetUpgrade}, rule by rule ({@link DowngradeRules}). Each node whose
 * schema changed between the target and the model's opset is rewritten back (axes and split sizes
 * from inputs to attributes, Softmax's axis written out, LayerNormalization decomposed), a node
 * that uses something the older opset lacks is refused, and so is an op that did not exist yet.
 *
 * <pre>
 *   opset 17:  y = Unsqueeze(x, axes=[1])       opset 11:  y = Unsqueeze[axes=[1]](x)
 *              z = LayerNormalization(h, g, b)   =>         z = ... ReduceMean/Sub/Pow/Sqrt/Div/Mul/Add
 *              w = Trilu(m)                                 refused: Trilu first appeared at opset 14
 * </pre>
 *
 * <p>All nodes are checked before any is changed: a refusal throws {@link OpsetUpgradeException}
 * naming every op and node that cannot go that low, and leaves the model untouched. The IR
 * version is left as it is (the newer one still carries an older opset); lower it separately.
 */
public final class OpsetDowngrade {
  /** The oldest opset Graft writes (the oldest its upgrade reads). */
  public static final long OLDEST_TARGET = OpsetUpgrade.OLDEST_SOURCE_OPSET;

  private OpsetDowngrade() {}

  /** Rewrites {@code m} in place for default-domain opset {@code target} (older than its own). */
  public static UpgradeReport downgrade(Model m, long target) {
    String key = m.opsets().containsKey("") || !m.opsets().containsKey("ai.onnx") ? "" : "ai.onnx";
    long from =
        m.defaultOpset()
            .orElseThrow(() -> new OpsetUpgradeException("The model imports no ai.onnx opset, so there is nothing to convert."));
    if (target > from) {
      throw new OpsetUpgradeException(
          "Opset " + target + " is newer than the model's " + from + "; that is an upgrade (OpsetUpgrade, graft convert --opset).");
    }
    if (target < OLDEST_TARGET) {
      throw new OpsetUpgradeException(
          "Target opset " + target + " is out of range: Graft writes opset " + OLDEST_TARGET + " or newer.");
    }

    List<OpsetUpgrade.Scope> scopes = new ArrayList<>();
    OpsetUpgrade.collect(m.graph(), "main graph", from, false, scopes);
    for (Function f : m.functions()) {
      Long v = f.opsets().get("");
      if (v == null) v = f.opsets().get("ai.onnx");
      if (v == null) continue;
      OpsetUpgrade.collect(f.body(), "function '" + f.id() + "'", v, true, scopes);
    }

    Ranks ranks = new Ranks();
    List<String> problems = new ArrayList<>();
    for (OpsetUpgrade.Scope s : scopes) {
      if (s.from() < target) {
        problems.add(s.where() + " is at opset " + s.from() + ", older than the target " + target);
        continue;
      }
      UpgradeContext probe = new UpgradeContext(s.graph(), s.functionBody(), ranks);
      for (Node n : s.graph().nodes()) {
        if (!n.domain().isEmpty()) continue;
        Optional<DowngradeRule> rule = DowngradeRules.forOp(n.opType());
        if (rule.isEmpty()) {
          problems.add(
              "op " + n.opType() + " (node '" + n.displayName() + "' in " + s.where() + "): Graft knows no"
                  + " conversion from opset " + s.from() + " down to " + target + ". Keep the model at"
                  + " opset " + s.from() + ".");
          continue;
        }
        rule.get()
            .refusal(n, s.from(), target, probe)
            .ifPresent(
                why ->
                    problems.add(
                        "op " + n.opType() + " (node '" + n.displayName() + "' in " + s.where() + "), opset "
                            + s.from() + " -> " + target + ": " + why));
      }
    }
    if (!problems.isEmpty()) {
      throw new OpsetUpgradeException(
          "Cannot convert the model from opset " + from + " down to " + target + "; " + problems.size()
              + " node(s) have no older form:\n  "
              + String.join("\n  ", problems.subList(0, Math.min(problems.size(), 20)))
              + (problems.size() > 20 ? "\n  ..." : ""));
    }

    // Axes and split sizes that move back to attributes leave their initializers unused.
    List<dev.graft.ir.Value> usedBefore = new ArrayList<>();
    for (OpsetUpgrade.Scope s : scopes) {
      for (dev.graft.ir.Value v : s.graph().initializers()) if (v.hasUses()) usedBefore.add(v);
    }
    ImmutableList.Builder<UpgradeReport.Change> changes = ImmutableList.builder();
    for (OpsetUpgrade.Scope s : scopes) {
      UpgradeContext ctx = new UpgradeContext(s.graph(), s.functionBody(), ranks);
      for (Node n : List.copyOf(s.graph().nodes())) {
        if (!n.domain().isEmpty()) continue;
        String name = n.displayName();
        String op = n.opType();
        String did = DowngradeRules.forOp(op).orElseThrow().apply(n, s.from(), target, ctx);
        if (!did.isEmpty()) changes.add(new UpgradeReport.Change(s.where(), name, op, did));
      }
    }

    for (dev.graft.ir.Value v : usedBefore) {
      if (!v.hasUses() && !v.isGraphOutput() && !v.isGraphInput()) v.graph().removeInitializer(v);
    }
    m.setOpset(key, target);
    for (Function f : m.functions()) {
      Map<String, Long> imports = f.opsets();
      if (imports.containsKey("")) imports.put("", target);
      else if (imports.containsKey("ai.onnx")) imports.put("ai.onnx", target);
    }
    return new UpgradeReport(from, target, changes.build());
  }
}
