package dev.graft.trainer.task;

import com.google.common.base.Splitter;
import com.google.common.collect.ImmutableList;
import dev.graft.trainer.data.ImageAugmentation;
import dev.graft.trainer.data.ImagePreprocessing;
import java.util.List;
import java.util.Optional;

/**
 * {@code graft train --image KEY=VALUE,...}: how images are prepared, augmented and subset.
 *
 * <pre>
 *   size=HxW      resize every image (bilinear)          crop=HxW     centre crop after the resize
 *   channels=1|3  grey or RGB                            mean=M[:M:M] std=S[:S:S]  (x - mean) / std
 *   flip          random left-right flips (training)     pad=P        random crops: pad by P, cut back
 *   limit=N       the first N training images            test-limit=N the first N held-out images
 * </pre>
 *
 * Steps left out come from the model's metadata ({@link ImagePreprocessing#KEY}, written by an
 * earlier run), else from the model's image input (its channels and fixed height and width).
 *
 * @param preprocessing the steps given; empty parts are filled from the model
 */
public record ImageOptions(
    Optional<Integer> channels, int height, int width, int cropHeight, int cropWidth,
    ImmutableList<Double> mean, ImmutableList<Double> std, ImageAugmentation augmentation, int limit, int testLimit) {

  public static ImageOptions defaults() {
    return new ImageOptions(Optional.empty(), 0, 0, 0, 0, ImmutableList.of(), ImmutableList.of(), ImageAugmentation.none(), 0, 0);
  }

  /** Parses the {@code --image} value; "" gives the defaults. */
  public static ImageOptions parse(String spec) {
    Optional<Integer> channels = Optional.empty();
    int[] size = {0, 0};
    int[] crop = {0, 0};
    List<Double> mean = List.of();
    List<Double> std = List.of();
    boolean flip = false;
    int pad = 0;
    int limit = 0;
    int testLimit = 0;
    for (String part : Splitter.on(',').trimResults().omitEmptyStrings().split(spec)) {
      int eq = part.indexOf('=');
      String key = eq < 0 ? part : part.substring(0, eq);
      String value = eq < 0 ? "" : part.substring(eq + 1);
      try {
        switch (key) {
          case "size" -> size = pair(value);
          case "crop" -> crop = pair(value);
          case "channels" -> channels = Optional.of(Integer.parseInt(value));
          case "mean" -> mean = numbers(value);
          case "std" -> std = numbers(value);
          case "flip" -> flip = true;
          case "pad" -> pad = Integer.parseInt(value);
          case "limit" -> limit = Integer.parseInt(value);
          case "test-limit" -> testLimit = Integer.parseInt(value);
          default -> throw new IllegalArgumentException(
              "--image: unknown key '" + key + "'; the keys are size, crop, channels, mean, std, flip, pad, limit, test-limit.");
        }
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException("--image: '" + part + "' needs a number (e.g. size=28x28, mean=0.5, limit=5000).", e);
      }
    }
    return new ImageOptions(channels, size[0], size[1], crop[0], crop[1], ImmutableList.copyOf(mean),
        ImmutableList.copyOf(std), new ImageAugmentation(pad, flip), limit, testLimit);
  }

  /**
   * The preprocessing of a run: these options, else {@code recorded} (the model's metadata), else
   * the model's input ({@code inputChannels}, {@code inputHeight} × {@code inputWidth}, 0 when
   * not fixed); normalisation defaults to none.
   */
  ImagePreprocessing resolve(Optional<ImagePreprocessing> recorded, int inputChannels, int inputHeight, int inputWidth) {
    ImagePreprocessing base = recorded.orElseGet(
        () -> ImagePreprocessing.none().withChannels(inputChannels).withResize(inputHeight, inputWidth));
    ImagePreprocessing p = base;
    if (channels.isPresent()) p = p.withChannels(channels.get());
    if (height > 0) p = p.withResize(height, width);
    if (cropHeight > 0) p = p.withCrop(cropHeight, cropWidth);
    if (!mean.isEmpty() || !std.isEmpty()) {
      p = p.withNormalization(mean.isEmpty() ? p.mean() : mean, std.isEmpty() ? p.std() : std);
    }
    return p;
  }

  private static int[] pair(String v) {
    List<String> parts = Splitter.on('x').splitToList(v);
    if (parts.size() == 1) return new int[] {Integer.parseInt(parts.get(0)), Integer.parseInt(parts.get(0))};
    if (parts.size() != 2) throw new NumberFormatException(v);
    return new int[] {Integer.parseInt(parts.get(0)), Integer.parseInt(parts.get(1))};
  }

  private static List<Double> numbers(String v) {
    return Splitter.on(':').splitToList(v).stream().map(Double::parseDouble).toList();
  }
}
