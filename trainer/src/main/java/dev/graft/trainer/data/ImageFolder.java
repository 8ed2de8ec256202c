package dev.graft.trainer.data;

import com.google.common.collect.ImmutableList;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.stream.Stream;
import javax.imageio.ImageIO;

/**
 * Reads the ImageFolder convention (torchvision's): one sub-folder per class, named after it,
 * holding that class's images.
 *
 * <pre>
 *   root/cat/001.png  root/cat/002.jpg  root/dog/x.png ...   =>   classes [cat, dog], labels 0, 1
 * </pre>
 *
 * Class folders are taken in name order (so ids are a function of the folder names), files in
 * name order; hidden entries are skipped, and so are files whose extension is not an image's
 * ({@code .png .jpg .jpeg .bmp .gif}). Images are decoded by {@code javax.imageio} (in the JDK). A
 * grey image becomes one channel, any other three (RGB; alpha is dropped), values in [0, 1].
 * Shapes are left as decoded: {@link ImagePreprocessing} makes them one.
 */
public final class ImageFolder {
  private static final ImmutableList<String> EXTENSIONS = ImmutableList.of(".png", ".jpg", ".jpeg", ".bmp", ".gif");

  private ImageFolder() {}

  public static LabelledImages read(Path root) {
    if (!Files.isDirectory(root)) {
      throw new DataFileException(
          root, 0, "is not a folder. An image dataset is a folder with one sub-folder per class.");
    }
    List<Path> classDirs = list(root).stream().filter(Files::isDirectory).toList();
    if (classDirs.size() < 2) {
      throw new DataFileException(
          root, 0, "has " + (classDirs.isEmpty() ? "no class folder" : "one class folder '"
              + classDirs.get(0).getFileName() + "'") + "; image classification needs at least two"
              + " sub-folders, one per class, each holding that class's images.");
    }
    List<String> classes = new ArrayList<>();
    ImmutableList.Builder<ImageExample> out = ImmutableList.builder();
    for (int label = 0; label < classDirs.size(); label++) {
      Path dir = classDirs.get(label);
      classes.add(dir.getFileName().toString());
      List<Path> files = list(dir).stream().filter(ImageFolder::isImageFile).toList();
      if (files.isEmpty()) {
        throw new DataFileException(
            dir, 0, "holds no image (.png, .jpg, .jpeg, .bmp, .gif); put this class's images there or"
                + " remove the folder.");
      }
      for (Path f : files) out.add(decode(f, label));
    }
    return new LabelledImages(out.build(), LabelMap.ofOrdered(classes));
  }

  /** One image file as CHW floats in [0, 1]. */
  public static ImageExample decode(Path file, int label) {
    BufferedImage img;
    try {
      img = ImageIO.read(file.toFile());
    } catch (IOException e) {
      throw new DataFileException(
          file, 0, "cannot be decoded as an image (" + e.getMessage() + "); replace or remove it.", e);
    }
    if (img == null) {
      throw new DataFileException(
          file, 0, "cannot be decoded as an image (not a PNG, JPEG, BMP or GIF, or damaged); replace"
              + " or remove it.");
    }
    int w = img.getWidth();
    int h = img.getHeight();
    if (img.getColorModel().getNumColorComponents() == 1 && img.getRaster().getNumBands() <= 2) {
      int bits = img.getColorModel().getComponentSize(0);
      float max = (1 << bits) - 1;
      float[] px = new float[w * h];
      int[] row = new int[w];
      for (int y = 0; y < h; y++) {
        img.getRaster().getSamples(0, y, w, 1, 0, row);
        for (int x = 0; x < w; x++) px[y * w + x] = row[x] / max;
      }
      return new ImageExample(px, 1, h, w, label);
    }
    float[] px = new float[3 * w * h];
    int plane = w * h;
    for (int y = 0; y < h; y++) {
      for (int x = 0; x < w; x++) {
        int rgb = img.getRGB(x, y);
        px[y * w + x] = ((rgb >> 16) & 0xff) / 255f;
        px[plane + y * w + x] = ((rgb >> 8) & 0xff) / 255f;
        px[2 * plane + y * w + x] = (rgb & 0xff) / 255f;
      }
    }
    return new ImageExample(px, 3, h, w, label);
  }

  private static boolean isImageFile(Path p) {
    String name = p.getFileName().toString().toLowerCase(Locale.ROOT);
    return Files.isRegularFile(p) && EXTENSIONS.stream().anyMatch(name::endsWith);
  }

  private static List<Path> list(Path dir) {
    try (Stream<Path> s = Files.list(dir)) {
      return s.filter(p -> !p.getFileName().toString().startsWith("."))
          .sorted()
          .toList();
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot list " + dir + ": " + e.getMessage(), e);
    }
  }
}
