package dev.graft.trainer.data;

import static com.google.common.base.Preconditions.checkArgument;

/**
 * A batch of images as one float tensor of shape {@code [size, channels, height, width]} (NCHW,
 * row-major, as ONNX convolutions take it) and their class ids. Arrays are shared, not copied:
 * treat them as read-only.
 */
public record ImageBatch(
    int size, int channels, int height, int width, float[] pixels, long[] labels) {
  public ImageBatch {
    checkArgument(size > 0, "empty image batch");
    checkArgument(
        pixels.length == size * channels * height * width,
        "%s pixels for a %s x %s x %s x %s batch",
        pixels.length,
        size,
        channels,
        height,
        width);
    checkArgument(labels.length == size, "%s labels for %s images", labels.length, size);
  }

  /** {@code [size, channels, height, width]}. */
  public long[] shape() {
    return new long[] {size, channels, height, width};
  }
}
