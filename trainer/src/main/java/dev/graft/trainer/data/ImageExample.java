package dev.graft.trainer.data;

import static com.google.common.base.Preconditions.checkArgument;

/**
 * One labelled image: {@code channels × height × width} floats in row-major (CHW) order, and its
 * class id. The array is shared, not copied: treat it as read-only.
 */
public record ImageExample(float[] pixels, int channels, int height, int width, int label) {
  public ImageExample {
    checkArgument(
        channels > 0 && height > 0 && width > 0,
        "image shape %s x %s x %s",
        channels,
        height,
        width);
    checkArgument(
        pixels.length == channels * height * width,
        "%s pixels for a %s x %s x %s image",
        pixels.length,
        channels,
        height,
        width);
    checkArgument(label >= -1, "label %s is negative (use -1 for unlabelled)", label);
  }
}
