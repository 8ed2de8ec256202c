package dev.graft.ir.io;

import static com.google.common.base.Preconditions.checkArgument;

/**
 * How {@link ModelIO#save} lays a model out on disk.
 *
 * @param layout {@link Layout#KEEP}: write tensors as they are (inline stays inline, external
 *     data is copied into one data file beside the output); {@link Layout#INLINE}: everything in
 *     the .onnx file; {@link Layout#EXTERNAL}: tensors of at least {@code threshold} bytes go
 *     to {@code dataFileName} beside the model. A model whose inline size would pass protobuf's
 *     2 GiB limit is always saved with external data.
 * @param threshold the smallest tensor, in bytes, moved to external data
 * @param dataFileName the data file's name, relative to the model's folder; null means the
 *     model file's name plus ".data"
 */
public record SaveOptions(Layout layout, long threshold, String dataFileName) {
  /** Tensors at or above this size go to external data by default (1 KiB, as onnx does). */
  public static final long DEFAULT_THRESHOLD = 1024;

  public enum Layout {
    KEEP,
    INLINE,
    EXTERNAL
  }

  public SaveOptions {
    checkArgument(threshold >= 0, "threshold must be >= 0, got %s", threshold);
  }

  public static SaveOptions keep() {
    return new SaveOptions(Layout.KEEP, DEFAULT_THRESHOLD, null);
  }

  public static SaveOptions inline() {
    return new SaveOptions(Layout.INLINE, DEFAULT_THRESHOLD, null);
  }

  public static SaveOptions external() {
    return new SaveOptions(Layout.EXTERNAL, DEFAULT_THRESHOLD, null);
  }

  public static SaveOptions external(long threshold) {
    return new SaveOptions(Layout.EXTERNAL, threshold, null);
  }

  public SaveOptions withDataFileName(String name) {
    return new SaveOptions(layout, threshold, name);
  }
}
