package dev.graft.trainer.data;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.graft.fixtures.Datasets;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ImageDatasetsTest {
  private static List<ImageExample> mnist;

  @BeforeAll
  static void load() {
    mnist = ImageDatasets.mnist(Datasets.mnist());
  }

  @Test
  void tenThousandDigitsWithTheirLabels() {
    assertThat(mnist).hasSize(10_000);
    int[] perDigit = new int[10];
    for (ImageExample e : mnist) {
      perDigit[e.label()]++;
      assertThat(e.pixels()).hasSize(784);
    }
    assertThat(perDigit).containsExactly(1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978);
    float min = 1, max = 0;
    for (ImageExample e : mnist) {
      for (float v : e.pixels()) {
        min = Math.min(min, v);
        max = Math.max(max, v);
      }
    }
    assertThat(min).isZero();
    assertThat(max).isEqualTo(1f);
  }

  @Test
  void imagesAreRowMajor() {
    // A 7 has a horizontal bar on top and a stroke running down; a 1 is a vertical stroke. Read
    // transposed, the mean 7 would show its bar down the left side and the 1 would lie flat.
    double[] seven = meanImage(7);
    double topBand = band(seven, 7, 11, 7, 21); // rows 7-10, columns 7-20
    double leftBand = band(seven, 7, 21, 7, 11); // the same band transposed
    assertThat(topBand).isGreaterThan(2 * leftBand);

    double[] one = meanImage(1);
    double vertical = band(one, 6, 24, 12, 16);
    double horizontal = band(one, 12, 16, 6, 24);
    assertThat(vertical).isGreaterThan(1.5 * horizontal);
  }

  @Test
  void batchesAreNchw() {
    List<ImageExample> shuffled = Shuffle.shuffled(mnist, 1);
    List<ImageBatch> batches = new ImageBatcher(64).batches(shuffled.subList(0, 130));
    assertThat(batches).hasSize(3);
    ImageBatch b = batches.get(1);
    assertThat(b.shape()).containsExactly(64, 1, 28, 28);
    ImageExample fifth = shuffled.get(64 + 5);
    float[] row = new float[784];
    System.arraycopy(b.pixels(), 5 * 784, row, 0, 784);
    assertThat(row).containsExactly(fifth.pixels());
    assertThat(b.labels()[5]).isEqualTo(fifth.label());
    assertThat(batches.get(2).shape()).containsExactly(2, 1, 28, 28);

    assertThat(new ImageBatcher(10).shuffled(mnist.subList(0, 50), 9).get(0).labels())
        .containsExactly(new ImageBatcher(10).shuffled(mnist.subList(0, 50), 9).get(0).labels());
  }

  @Test
  void jsonArrayOfInputOutputObjects(@TempDir Path dir) throws IOException {
    String pixels = IntStream.range(0, 784).mapToObj(i -> i == 3 ? "0.5" : "0")
        .collect(Collectors.joining(","));
    String oneHot = "[0,0,0,1,0,0,0,0,0,0]";
    Path file = dir.resolve("set.json");
    Files.writeString(file, "[{\"input\":[" + pixels + "],\"output\":" + oneHot + "},"
        + "{\"output\":8,\"input\":[" + pixels + "]}]");
    List<ImageExample> read = ImageDatasets.mnist(file);
    assertThat(read).extracting(ImageExample::label).containsExactly(3, 8);
    assertThat(read.get(0).pixels()[3]).isEqualTo(0.5f);

    Path short_ = dir.resolve("short.json");
    Files.writeString(short_, "[{\"input\":[0,1],\"output\":1}]");
    assertThatThrownBy(() -> ImageDatasets.mnist(short_))
        .hasMessage("short.json: element 0 has 2 pixels; MNIST images have 784.");
    Path bytes = dir.resolve("bytes.json");
    Files.writeString(bytes, "[{\"input\":[255],\"output\":1}]");
    assertThatThrownBy(() -> ImageDatasets.mnist(bytes))
        .hasMessageContaining("pixel value 255.0 is outside [0, 1]");
    Path twoHot = dir.resolve("hot.json");
    Files.writeString(twoHot, "[{\"output\":[1,1,0,0,0,0,0,0,0,0],\"input\":[" + pixels + "]}]");
    assertThatThrownBy(() -> ImageDatasets.mnist(twoHot)).hasMessageContaining("not a one-hot");
    assertThatThrownBy(() -> ImageDatasets.mnist(dir.resolve("none")))
        .hasMessageContaining("does not exist");
  }

  private static double[] meanImage(int digit) {
    double[] mean = new double[784];
    int n = 0;
    for (ImageExample e : mnist) {
      if (e.label() != digit) continue;
      for (int i = 0; i < 784; i++) mean[i] += e.pixels()[i];
      n++;
    }
    for (int i = 0; i < 784; i++) mean[i] /= n;
    return mean;
  }

  private static double band(double[] img, int r0, int r1, int c0, int c1) {
    double s = 0;
    for (int r = r0; r < r1; r++) for (int c = c0; c < c1; c++) s += img[r * 28 + c];
    return s / ((r1 - r0) * (c1 - c0));
  }
}
