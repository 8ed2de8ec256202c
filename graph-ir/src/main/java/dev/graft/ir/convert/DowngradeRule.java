package dev.graft.ir.convert;

import dev.graft.ir.Node;
import java.util.Optional;

/**
 * How one default-domain op moves from opset {@code from} down to opset {@code to} (to &lt; from):
 * the reverse of an {@link UpgradeRule}. {@link #refusal} runs for every node before anything
 * changes, so a refused downgrade leaves the model as it was; {@link #apply} then edits the node
 * and returns what it did, or "" when the older schema accepts the node as it is.
 */
interface DowngradeRule {

  /** Why this node has no form at opset {@code to}, or empty when {@link #apply} will succeed. */
  default Optional<String> refusal(Node node, long from, long to, UpgradeContext ctx) {
    return Optional.empty();
  }

  /** Rewrites the node for opset {@code to}; returns a short description, "" for a plain bump. */
  String apply(Node node, long from, long to, UpgradeContext ctx);

  /** Ops whose schema changes between {@code to} and {@code from} only widened types or added
   * what the node does not use. */
  DowngradeRule BUMP = (node, from, to, ctx) -> "";

  /** True when a schema change at {@code version} lies in (to, from]: going down crosses it. */
  static boolean crossesDown(long from, long to, long version) {
    return to < version && version <= from;
  }
}
