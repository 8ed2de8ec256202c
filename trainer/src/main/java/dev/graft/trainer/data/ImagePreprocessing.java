package dev.graft.trainer.data;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import com.google.gson.Gson;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import dev.graft.ir.Model;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.util.List;
import java.util.Optional;

/**
 * How raw images become the model's input tensor, declared once and stored in the model's
 * metadata under {@value #KEY}, so training, evaluation and export read the same steps:
 *
 * <pre>
 *   decoded CHW in [0, 1]  ─ channels (1 → 3 repeats the grey plane; 3 → 1 takes luminance
 *   0.299 R + 0.587 G + 0.114 B) ─ resize to H × W (bilinear) ─ centre crop to h × w
 *   ─ (x − mean[c]) / std[c]  ─►  NCHW float batch
 *
 *   {"channels":3,"resize":[48,48],"crop":[44,44],"mean":[0.5,0.5,0.5],"std":[0.5,0.5,0.5]}
 * </pre>
 *
 * A 0 (or a missing key) skips a step: {@code channels} 0 keeps the decoded ones, no resize keeps
 * the size, an empty mean is 0 and an empty std 1. Without a resize every image must already have
 * one size. Resizing runs through {@code java.awt}'s bilinear drawing on 16-bit planes, so values
 * are kept to 1/65535.
 */
public record ImagePreprocessing(
    int channels, int resizeHeight, int resizeWidth, int cropHeight, int cropWidth,
    ImmutableList<Double> mean, ImmutableList<Double> std) {
  public static final String KEY = "graft.image.preprocess";
  private static final Gson GSON = new Gson();

  public ImagePreprocessing {
    checkArgument(channels == 0 || channels == 1 || channels == 3, "channels must be 1 or 3 (0 keeps them), got %s", channels);
    checkArgument(resizeHeight >= 0 && resizeWidth >= 0 && (resizeHeight == 0) == (resizeWidth == 0),
        "resize must be two positive sizes (height, width), got %s x %s", resizeHeight, resizeWidth);
    checkArgument(cropHeight >= 0 && cropWidth >= 0 && (cropHeight == 0) == (cropWidth == 0),
        "crop must be two positive sizes (height, width), got %s x %s", cropHeight, cropWidth);
    checkArgument(resizeHeight == 0 || cropHeight <= resizeHeight && cropWidth <= resizeWidth,
        "the crop %s x %s is larger than the resize %s x %s", cropHeight, cropWidth, resizeHeight, resizeWidth);
    for (double s : std) checkArgument(s > 0, "std values must be positive, got %s", std);
    checkArgument(mean.size() <= 1 || channels == 0 || mean.size() == channels,
        "mean has %s values for %s channels", mean.size(), channels);
    checkArgument(std.size() <= 1 || channels == 0 || std.size() == channels,
        "std has %s values for %s channels", std.size(), channels);
  }

  /** Nothing: images go in as decoded. */
  public static ImagePreprocessing none() {
    return new ImagePreprocessing(0, 0, 0, 0, 0, ImmutableList.of(), ImmutableList.of());
  }

  public ImagePreprocessing withChannels(int c) {
    return new ImagePreprocessing(c, resizeHeight, resizeWidth, cropHeight, cropWidth, mean, std);
  }

  public ImagePreprocessing withResize(int h, int w) {
    return new ImagePreprocessing(channels, h, w, cropHeight, cropWidth, mean, std);
  }

  public ImagePreprocessing withCrop(int h, int w) {
    return new ImagePreprocessing(channels, resizeHeight, resizeWidth, h, w, mean, std);
  }

  public ImagePreprocessing withNormalization(List<Double> m, List<Double> s) {
    return new ImagePreprocessing(
        channels, resizeHeight, resizeWidth, cropHeight, cropWidth, ImmutableList.copyOf(m), ImmutableList.copyOf(s));
  }

  /** Applies every step to one image. */
  public ImageExample apply(ImageExample e) {
    float[] px = e.pixels();
    int c = e.channels();
    int h = e.height();
    int w = e.width();
    if (channels != 0 && channels != c) {
      checkArgument(c == 1 || c == 3, "cannot convert a %s-channel image to %s channels", c, channels);
      px = channels == 3 ? greyToRgb(px) : rgbToGrey(px);
      c = channels;
    }
    if (resizeHeight != 0 && (resizeHeight != h || resizeWidth != w)) {
      px = resize(px, c, h, w, resizeHeight, resizeWidth);
      h = resizeHeight;
      w = resizeWidth;
    }
    if (cropHeight != 0 && (cropHeight != h || cropWidth != w)) {
      checkArgument(cropHeight <= h && cropWidth <= w,
          "cannot centre-crop a %s x %s image to %s x %s; resize it first", h, w, cropHeight, cropWidth);
      px = crop(px, c, h, w, (h - cropHeight) / 2, (w - cropWidth) / 2, cropHeight, cropWidth);
      h = cropHeight;
      w = cropWidth;
    }
    if (!mean.isEmpty() || !std.isEmpty()) {
      px = px == e.pixels() ? px.clone() : px;
      int plane = h * w;
      for (int k = 0; k < c; k++) {
        float m = mean.isEmpty() ? 0f : mean.get(mean.size() == 1 ? 0 : k).floatValue();
        float s = std.isEmpty() ? 1f : std.get(std.size() == 1 ? 0 : k).floatValue();
        for (int i = k * plane; i < (k + 1) * plane; i++) px[i] = (px[i] - m) / s;
      }
    }
    return new ImageExample(px, c, h, w, e.label());
  }

  /**
   * Applies every step to every image; fails naming {@code source} when the results differ in
   * shape (images of several sizes and no resize).
   */
  public ImmutableList<ImageExample> applyAll(List<ImageExample> examples, String source) {
    ImmutableList.Builder<ImageExample> out = ImmutableList.builderWithExpectedSize(examples.size());
    ImageExample first = null;
    int index = 0;
    for (ImageExample raw : examples) {
      ImageExample e = apply(raw);
      if (first == null) {
        first = e;
      } else if (e.height() != first.height() || e.width() != first.width()) {
        throw new IllegalArgumentException(
            source + ": images differ in size (image 0 is " + first.height() + " x " + first.width()
                + ", image " + index + " is " + raw.height() + " x " + raw.width() + ") and no resize is"
                + " set; set a resize (--image size=HxW) so every image gets one size.");
      } else if (e.channels() != first.channels()) {
        throw new IllegalArgumentException(
            source + ": image 0 has " + first.channels() + " channels but image " + index + " has "
                + e.channels() + "; set the channels (--channels 1 or 3) so every image gets the same.");
      }
      out.add(e);
      index++;
    }
    return out.build();
  }

  /** The preprocessing recorded in {@code m}, if any. */
  public static Optional<ImagePreprocessing> read(Model m) {
    String json = m.metadata().get(KEY);
    return json == null || json.isBlank() ? Optional.empty() : Optional.of(parse(json, "model metadata '" + KEY + "'"));
  }

  /** Records this preprocessing in {@code m}'s metadata. */
  public void write(Model m) {
    m.putMetadata(KEY, toJson());
  }

  public String toJson() {
    JsonObject o = new JsonObject();
    if (channels != 0) o.addProperty("channels", channels);
    if (resizeHeight != 0) o.add("resize", ints(resizeHeight, resizeWidth));
    if (cropHeight != 0) o.add("crop", ints(cropHeight, cropWidth));
    if (!mean.isEmpty()) o.add("mean", GSON.toJsonTree(mean));
    if (!std.isEmpty()) o.add("std", GSON.toJsonTree(std));
    return GSON.toJson(o);
  }

  /** Parses {@link #toJson()}'s form; {@code where} names the source in errors. */
  public static ImagePreprocessing parse(String json, String where) {
    try {
      JsonElement root = JsonParser.parseString(json);
      if (!root.isJsonObject()) throw new IllegalArgumentException(where + " must be a JSON object, got " + json);
      JsonObject o = root.getAsJsonObject();
      for (String key : o.keySet()) {
        if (!List.of("channels", "resize", "crop", "mean", "std").contains(key)) {
          throw new IllegalArgumentException(
              where + ": unknown key '" + key + "'; the keys are channels, resize, crop, mean, std.");
        }
      }
      int[] resize = pair(o, "resize", where);
      int[] crop = pair(o, "crop", where);
      return new ImagePreprocessing(
          o.has("channels") ? o.get("channels").getAsInt() : 0, resize[0], resize[1], crop[0], crop[1],
          doubles(o, "mean"), doubles(o, "std"));
    } catch (JsonParseException | IllegalStateException | UnsupportedOperationException | NumberFormatException e) {
      throw new IllegalArgumentException(where + " is not a preprocessing object (" + e.getMessage() + "): " + json, e);
    }
  }

  private static int[] pair(JsonObject o, String key, String where) {
    if (!o.has(key)) return new int[2];
    JsonArray a = o.getAsJsonArray(key);
    if (a.size() != 2) throw new IllegalArgumentException(where + ": '" + key + "' must be [height, width], got " + a);
    return new int[] {a.get(0).getAsInt(), a.get(1).getAsInt()};
  }

  private static ImmutableList<Double> doubles(JsonObject o, String key) {
    if (!o.has(key)) return ImmutableList.of();
    ImmutableList.Builder<Double> b = ImmutableList.builder();
    for (JsonElement e : o.getAsJsonArray(key)) b.add(e.getAsDouble());
    return b.build();
  }

  private static JsonArray ints(int a, int b) {
    JsonArray arr = new JsonArray();
    arr.add(a);
    arr.add(b);
    return arr;
  }

  private static float[] greyToRgb(float[] px) {
    float[] out = new float[px.length * 3];
    for (int k = 0; k < 3; k++) System.arraycopy(px, 0, out, k * px.length, px.length);
    return out;
  }

  private static float[] rgbToGrey(float[] px) {
    int plane = px.length / 3;
    float[] out = new float[plane];
    for (int i = 0; i < plane; i++) out[i] = 0.299f * px[i] + 0.587f * px[plane + i] + 0.114f * px[2 * plane + i];
    return out;
  }

  /** Bilinear resize of each plane, drawn by java.awt on a 16-bit grey image. */
  static float[] resize(float[] px, int c, int h, int w, int nh, int nw) {
    float[] out = new float[c * nh * nw];
    int[] in = new int[h * w];
    int[] res = new int[nh * nw];
    for (int k = 0; k < c; k++) {
      float lo = Float.POSITIVE_INFINITY;
      float hi = Float.NEGATIVE_INFINITY;
      for (int i = 0; i < h * w; i++) {
        lo = Math.min(lo, px[k * h * w + i]);
        hi = Math.max(hi, px[k * h * w + i]);
      }
      float range = hi > lo ? hi - lo : 1f;
      for (int i = 0; i < h * w; i++) in[i] = Math.round((px[k * h * w + i] - lo) / range * 65535f);
      BufferedImage src = new BufferedImage(w, h, BufferedImage.TYPE_USHORT_GRAY);
      src.getRaster().setPixels(0, 0, w, h, in);
      BufferedImage dst = new BufferedImage(nw, nh, BufferedImage.TYPE_USHORT_GRAY);
      Graphics2D g = dst.createGraphics();
      g.setRenderingHint(RenderingHints.KEY_INTERPOLATION, RenderingHints.VALUE_INTERPOLATION_BILINEAR);
      g.drawImage(src, 0, 0, nw, nh, null);
      g.dispose();
      dst.getRaster().getPixels(0, 0, nw, nh, res);
      for (int i = 0; i < nh * nw; i++) out[k * nh * nw + i] = lo + res[i] / 65535f * range;
    }
    return out;
  }

  static float[] crop(float[] px, int c, int h, int w, int top, int left, int ch, int cw) {
    float[] out = new float[c * ch * cw];
    for (int k = 0; k < c; k++) {
      for (int y = 0; y < ch; y++) {
        System.arraycopy(px, k * h * w + (top + y) * w + left, out, k * ch * cw + y * cw, cw);
      }
    }
    return out;
  }
}
