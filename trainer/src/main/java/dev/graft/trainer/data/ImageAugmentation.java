package dev.graft.trainer.data;

import static com.google.common.base.Preconditions.checkArgument;

import java.util.SplittableRandom;

/**
 * Light augmentation for training batches, applied after {@link ImagePreprocessing} and drawn
 * from a seeded generator so a run is reproducible:
 *
 * <pre>
 *   random crop:  pad each side by p (with 0, the per-channel mean after normalisation), then cut
 *                 a window of the original size at a uniform offset in [0, 2p]²
 *   flip:         mirror left-right with probability 1/2
 * </pre>
 *
 * {@link #none()} returns images unchanged (evaluation never augments).
 */
public record ImageAugmentation(int cropPadding, boolean flip) {
  public ImageAugmentation {
    checkArgument(cropPadding >= 0, "random-crop padding must be 0 or more, got %s", cropPadding);
  }

  public static ImageAugmentation none() {
    return new ImageAugmentation(0, false);
  }

  public boolean isNone() {
    return cropPadding == 0 && !flip;
  }

  public ImageExample apply(ImageExample e, SplittableRandom random) {
    if (isNone()) return e;
    int c = e.channels();
    int h = e.height();
    int w = e.width();
    float[] src = e.pixels();
    float[] out = new float[src.length];
    int p = cropPadding;
    int dy = p == 0 ? 0 : random.nextInt(2 * p + 1) - p;
    int dx = p == 0 ? 0 : random.nextInt(2 * p + 1) - p;
    boolean mirror = flip && random.nextBoolean();
    for (int k = 0; k < c; k++) {
      for (int y = 0; y < h; y++) {
        int sy = y + dy;
        if (sy < 0 || sy >= h) continue;
        for (int x = 0; x < w; x++) {
          int tx = mirror ? w - 1 - x : x;
          int sx = tx + dx;
          if (sx < 0 || sx >= w) continue;
          out[k * h * w + y * w + x] = src[k * h * w + sy * w + sx];
        }
      }
    }
    return new ImageExample(out, c, h, w, e.label());
  }
}
