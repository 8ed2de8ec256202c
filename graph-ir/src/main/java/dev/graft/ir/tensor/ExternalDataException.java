package dev.graft.ir.tensor;

/** External data that cannot be used: missing, truncated, or outside the model's folder. */
public final class ExternalDataException extends RuntimeException {
  public ExternalDataException(String message) {
    super(message);
  }
}
