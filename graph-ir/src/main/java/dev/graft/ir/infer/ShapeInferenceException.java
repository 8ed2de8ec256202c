package dev.graft.ir.infer;

/** A node whose inputs contradict each other or its declared output types. */
public final class ShapeInferenceException extends RuntimeException {
  public ShapeInferenceException(String message) {
    super(message);
  }

  public ShapeInferenceException(String message, Throwable cause) {
    super(message, cause);
  }
}
