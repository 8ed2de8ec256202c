package dev.graft.ir.convert;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Function;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Upgrades a model's default-domain (ai.onnx) opset, like the ONNX version converter, for the
 * operators Graft supports: each node whose schema changed between the model's opset and the
 * target is rewritten by its rule in {@link UpgradeRules}; subgraphs (If, Loop, Scan) and the
 * bodies of model-local functions (at their own opset import) are upgraded too. Other domains are
 * left alone.
 *
 * <p>All nodes are checked before any is changed: an unknown op, a node a rule refuses, a
 * downgrade or a target out of range throws {@link OpsetUpgradeException} naming the op, the node
 * and the versions, and leaves the model untouched.
 */
public final class OpsetUpgrade {
  /** The one dialect passes and gradient rules speak. */
  public static final long WORKING_OPSET = 17;

  /** The oldest opset the rules start from. */
  public static final long OLDEST_SOURCE_OPSET = 11;

  /** The newest ai.onnx opset ONNX Runtime 1.29 loads (it rejects 27 as under development). */
  public static final long NEWEST_OPSET = 26;

  /** ONNX ties opset 17 to IR version 8; older IR versions are raised to it. */
  static final long MIN_IR_VERSION = 8;

  private OpsetUpgrade() {}

  /** Upgrades to {@link #WORKING_OPSET}. */
  public static UpgradeReport upgrade(Model m) {
    return upgrade(m, WORKING_OPSET);
  }

  /** Upgrades the default-domain opset of {@code m} to {@code targetOpset}, in place. */
  public static UpgradeReport upgrade(Model m, long targetOpset) {
    String key = m.opsets().containsKey("") || !m.opsets().containsKey("ai.onnx") ? "" : "ai.onnx";
    long from =
        m.defaultOpset()
            .orElseThrow(
                () ->
                    new OpsetUpgradeException(
                        "The model imports no ai.onnx opset, so there is nothing to upgrade."
                            + " Add an opset import for domain \"\" first."));
    checkVersions("the model", from, targetOpset);

    List<Scope> scopes = new ArrayList<>();
    collect(m.graph(), "main graph", from, false, scopes);
    for (Function f : m.functions()) {
      Long v = f.opsets().get("");
      if (v == null) v = f.opsets().get("ai.onnx");
      if (v == null) continue; // a function of other domains only
      checkVersions("function '" + f.id() + "'", v, targetOpset);
      collect(f.body(), "function '" + f.id() + "'", v, true, scopes);
    }

    List<String> problems = new ArrayList<>();
    for (Scope s : scopes) {
      for (Node n : s.graph.nodes()) {
        if (!n.domain().isEmpty()) continue;
        Optional<UpgradeRule> rule = UpgradeRules.forOp(n.opType());
        if (rule.isEmpty()) {
          problems.add(
              "op "
                  + n.opType()
                  + " (node '"
                  + n.displayName()
                  + "' in "
                  + s.where
                  + "): Graft knows no conversion from opset "
                  + s.from
                  + " to "
                  + targetOpset
                  + ". Add a rule to UpgradeRules, or keep the model at opset "
                  + s.from
                  + ".");
          continue;
        }
        rule.get()
            .refusal(n, s.from, targetOpset)
            .ifPresent(
                why ->
                    problems.add(
                        "op "
                            + n.opType()
                            + " (node '"
                            + n.displayName()
                            + "' in "
                            + s.where
                            + "), opset "
                            + s.from
                            + " -> "
                            + targetOpset
                            + ": "
                            + why));
      }
    }
    if (!problems.isEmpty()) {
      throw new OpsetUpgradeException(
          "Cannot upgrade the model from opset "
              + from
              + " to "
              + targetOpset
              + "; "
              + problems.size()
              + " node(s) cannot be converted:\n  "
              + String.join("\n  ", problems.subList(0, Math.min(problems.size(), 20)))
              + (problems.size() > 20 ? "\n  ..." : ""));
    }

    ImmutableList.Builder<UpgradeReport.Change> changes = ImmutableList.builder();
    Ranks ranks = new Ranks();
    for (Scope s : scopes) {
      UpgradeContext ctx = new UpgradeContext(s.graph, s.functionBody, ranks);
      for (Node n : s.graph.nodes()) {
        if (!n.domain().isEmpty()) continue;
        String name = n.displayName();
        String op = n.opType();
        String did = UpgradeRules.forOp(op).orElseThrow().apply(n, s.from, targetOpset, ctx);
        if (!did.isEmpty()) changes.add(new UpgradeReport.Change(s.where, name, op, did));
      }
    }

    m.setOpset(key, targetOpset);
    for (Function f : m.functions()) {
      Map<String, Long> imports = f.opsets();
      if (imports.containsKey("")) imports.put("", targetOpset);
      else if (imports.containsKey("ai.onnx")) imports.put("ai.onnx", targetOpset);
    }
    if (m.irVersion() < MIN_IR_VERSION) m.setIrVersion(MIN_IR_VERSION);
    return new UpgradeReport(from, targetOpset, changes.build());
  }

  private static void checkVersions(String what, long from, long target) {
    if (target < from) {
      throw new OpsetUpgradeException(
          "Cannot convert "
              + what
              + " from opset "
              + from
              + " down to "
              + target
              + ": OpsetUpgrade only upgrades; OpsetDowngrade converts down (graft convert --opset N picks the right one). Or ask for opset "
              + from
              + " or newer.");
    }
    if (from < OLDEST_SOURCE_OPSET) {
      throw new OpsetUpgradeException(
          "Cannot upgrade "
              + what
              + " from opset "
              + from
              + ": Graft's rules start at opset "
              + OLDEST_SOURCE_OPSET
              + ". Convert it to opset 11 first (onnx.version_converter), or re-export it.");
    }
    if (target < WORKING_OPSET || target > NEWEST_OPSET) {
      throw new OpsetUpgradeException(
          "Target opset "
              + target
              + " is out of range: Graft upgrades to an opset from "
              + WORKING_OPSET
              + " to "
              + NEWEST_OPSET
              + " (the newest ONNX Runtime 1.29 loads).");
    }
  }

  /** Adds {@code g} and, depth first, the subgraphs of its nodes. */
  static void collect(Graph g, String where, long from, boolean fn, List<Scope> out) {
    out.add(new Scope(g, where, from, fn));
    for (Node n : g.nodes()) {
      for (var a : n.attributes().values()) {
        for (Graph sub : a.subgraphs()) {
          collect(sub, where + " > " + n.displayName() + "." + a.name(), from, fn, out);
        }
      }
    }
  }

  record Scope(Graph graph, String where, long from, boolean functionBody) {}
}
