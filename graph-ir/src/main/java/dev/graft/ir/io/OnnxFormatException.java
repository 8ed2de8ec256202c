package dev.graft.ir.io;

/**
 * A file that cannot be read as an ONNX model, or a model that breaks the format's rules. The
 * message says what is wrong, where (file, node, tensor) and, where possible, how to fix it.
 */
public final class OnnxFormatException extends RuntimeException {
  public OnnxFormatException(String message) {
    super(message);
  }

  public OnnxFormatException(String message, Throwable cause) {
    super(message, cause);
  }
}
