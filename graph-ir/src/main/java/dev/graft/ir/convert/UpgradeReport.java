package dev.graft.ir.convert;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMultiset;

/**
 * What {@link OpsetUpgrade} did: the default-domain opset before and after, and one entry per
 * node it rewrote (plain version bumps are not listed).
 */
public record UpgradeReport(long fromOpset, long toOpset, ImmutableList<Change> changes) {

  /** One rewritten node: where it was ("main", a subgraph path or "function f"), its name, its op
   * and what the rule did. */
  public record Change(String scope, String node, String opType, String action) {
    @Override
    public String toString() {
      return opType + " '" + node + "' (" + scope + "): " + action;
    }
  }

  /** How many nodes each op/action pair touched, e.g. {@code "ReduceMean: axes attribute -> input"}. */
  public ImmutableMultiset<String> counts() {
    return changes.stream()
        .map(c -> c.opType() + ": " + c.action())
        .collect(ImmutableMultiset.toImmutableMultiset());
  }

  public boolean changed() {
    return fromOpset != toOpset || !changes.isEmpty();
  }

  @Override
  public String toString() {
    StringBuilder b = new StringBuilder("opset " + fromOpset + " -> " + toOpset);
    for (var e : counts().entrySet()) {
      b.append("\n  ").append(e.getCount()).append(" x ").append(e.getElement());
    }
    return b.toString();
  }
}
