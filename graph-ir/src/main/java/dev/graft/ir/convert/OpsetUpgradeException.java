package dev.graft.ir.convert;

/**
 * An opset upgrade that cannot be done: a downgrade, an op whose conversion Graft does not know,
 * or a node whose old semantics the new opset cannot express. The message names the op, the node
 * and the versions, and says what to do instead.
 */
public final class OpsetUpgradeException extends IllegalArgumentException {
  public OpsetUpgradeException(String message) {
    super(message);
  }
}
