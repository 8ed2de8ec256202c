package dev.graft.ir.convert;

import dev.graft.ir.Node;
import java.util.Optional;

/** An op Graft will not carry to a newer opset, with the reason and what to do instead. */
final class RefuseRule implements UpgradeRule {
  private final String reason;

  RefuseRule(String reason) {
    this.reason = reason;
  }

  @Override
  public Optional<String> refusal(Node node, long from, long to) {
    return Optional.of(reason);
  }

  @Override
  public String apply(Node node, long from, long to, UpgradeContext ctx) {
    throw new IllegalStateException("refused op " + node.opType() + " reached apply");
  }
}
