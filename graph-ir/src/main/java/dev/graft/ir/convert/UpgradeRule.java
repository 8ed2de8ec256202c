package dev.graft.ir.convert;

import dev.graft.ir.Node;
import java.util.Optional;

/**
 * How one default-domain op moves from opset {@code from} to opset {@code to} (from &lt; to).
 *
 * <p>{@link #refusal} runs for every node before anything changes, so a refused upgrade leaves the
 * model as it was; {@link #apply} then edits the node (through the {@link UpgradeContext}) and
 * returns what it did, or "" when the new schema accepts the node as it is (a version bump).
 */
public interface UpgradeRule {

  /** Why this node cannot be upgraded, or empty when {@link #apply} will succeed. */
  default Optional<String> refusal(Node node, long from, long to) {
    return Optional.empty();
  }

  /** Rewrites the node for opset {@code to}; returns a short description, "" for a plain bump. */
  String apply(Node node, long from, long to, UpgradeContext ctx);

  /** A rule for ops whose schema changes between 11 and the newest opset only widen types or add
   * attributes and inputs whose defaults keep the old meaning. */
  UpgradeRule BUMP = (node, from, to, ctx) -> "";

  /** True when a schema change at {@code version} lies in (from, to]. */
  static boolean crosses(long from, long to, long version) {
    return from < version && version <= to;
  }
}
