package dev.graft.ir.convert;

import java.util.Optional;

/**
 * An op that first appeared at opset {@code since}: it has no older form, so a downgrade below
 * that refuses it, naming what to do instead.
 */
final class IntroducedAtRule implements DowngradeRule {
  private final long since;
  private final String instead;

  IntroducedAtRule(long since, String instead) {
    this.since = since;
    this.instead = instead;
  }

  @Override
  public Optional<String> refusal(dev.graft.ir.Node node, long from, long to, UpgradeContext ctx) {
    if (to >= since) return Optional.empty();
    return Optional.of(
        node.opType() + " first appeared at opset " + since + " and has no older form. " + instead);
  }

  @Override
  public String apply(dev.graft.ir.Node node, long from, long to, UpgradeContext ctx) {
    return "";
  }
}
