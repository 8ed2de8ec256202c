package dev.graft.trainer.data;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import com.google.common.collect.ImmutableList;
import dev.graft.fixtures.FashionMnist;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import java.awt.image.BufferedImage;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import java.util.zip.GZIPOutputStream;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** IDX, ImageFolder, preprocessing and augmentation, and the image path's bad inputs. */
class ImageDataTest {
  @TempDir Path tmp;

  @Test
  void fashionMnistFromDebiansPackage() {
    LabelledImages test =
        IdxFiles.read(FashionMnist.images("test"), FashionMnist.labels("test"), 0, FashionMnist.CLASSES);
    assertThat(test.examples()).hasSize(10_000);
    assertThat(test.classes().labels()).isEqualTo(FashionMnist.CLASSES);
    // The t10k split is balanced: 1,000 of each class (Xiao et al. 2017, Table 1).
    int[] per = new int[10];
    for (ImageExample e : test.examples()) {
      per[e.label()]++;
      assertThat(e.channels()).isEqualTo(1);
      assertThat(e.height()).isEqualTo(28);
      assertThat(e.width()).isEqualTo(28);
    }
    assertThat(per).containsOnly(1000);
    LabelledImages first = IdxFiles.read(FashionMnist.images("train"), FashionMnist.labels("train"), 50, List.of());
    assertThat(first.examples()).hasSize(50);
    assertThat(first.classes().size()).isLessThanOrEqualTo(10);
  }

  @Test
  void idxPlainAndGzippedReadTheSameBytes() throws IOException {
    byte[] pixels = new byte[2 * 3 * 4];
    for (int i = 0; i < pixels.length; i++) pixels[i] = (byte) (i * 11);
    for (boolean gz : new boolean[] {false, true}) {
      Path images = tmp.resolve("img" + gz);
      Path labels = tmp.resolve("lab" + gz);
      writeIdx(images, gz, new int[] {2, 3, 4}, pixels);
      writeIdx(labels, gz, new int[] {2}, new byte[] {1, 0});
      LabelledImages r = IdxFiles.read(images, labels, 0, List.of());
      assertThat(r.examples()).hasSize(2);
      ImageExample e = r.examples().get(1);
      assertThat(e.height()).isEqualTo(3);
      assertThat(e.width()).isEqualTo(4);
      assertThat(e.label()).isZero();
      assertThat(e.pixels()[5]).isEqualTo(((12 + 5) * 11 & 0xff) / 255f);
      assertThat(r.classes().labels()).containsExactly("0", "1");
    }
  }

  @Test
  void idxWithTheWrongMagicSaysWhichFileToPass() throws IOException {
    Path labels = tmp.resolve("labels");
    writeIdx(labels, false, new int[] {1}, new byte[] {3});
    assertThatThrownBy(() -> IdxFiles.read(labels, labels, 0, List.of()))
        .isInstanceOf(DataFileException.class)
        .hasMessageContaining("is not an IDX images file")
        .hasMessageContaining("-images-idx3-ubyte");
  }

  @Test
  void imageFolderDecodesGreyAndRgbPngs() throws IOException {
    BufferedImage grey = new BufferedImage(5, 4, BufferedImage.TYPE_BYTE_GRAY);
    for (int y = 0; y < 4; y++) for (int x = 0; x < 5; x++) grey.getRaster().setSample(x, y, 0, 10 * x + y);
    BufferedImage rgb = new BufferedImage(5, 4, BufferedImage.TYPE_INT_RGB);
    rgb.setRGB(2, 1, 0x102030);
    write(grey, tmp.resolve("root/zebra/a.png"));
    write(rgb, tmp.resolve("root/ant/b.png"));
    write(rgb, tmp.resolve("root/ant/c.png"));
    Files.writeString(tmp.resolve("root/ant/notes.txt"), "not an image, skipped");
    LabelledImages r = ImageFolder.read(tmp.resolve("root"));
    assertThat(r.classes().labels()).containsExactly("ant", "zebra");
    assertThat(r.examples()).extracting(ImageExample::label).containsExactly(0, 0, 1);
    ImageExample z = r.examples().get(2);
    assertThat(z.channels()).isEqualTo(1);
    assertThat(z.pixels()[2 * 5 + 3]).isEqualTo((10 * 3 + 2) / 255f);
    ImageExample a = r.examples().get(0);
    assertThat(a.channels()).isEqualTo(3);
    int plane = 20;
    assertThat(new float[] {a.pixels()[7], a.pixels()[plane + 7], a.pixels()[2 * plane + 7]})
        .containsExactly(0x10 / 255f, 0x20 / 255f, 0x30 / 255f);
  }

  @Test
  void anUnreadableImageIsOneLineNamingIt() throws IOException {
    write(new BufferedImage(2, 2, BufferedImage.TYPE_BYTE_GRAY), tmp.resolve("root/a/ok.png"));
    Files.createDirectories(tmp.resolve("root/b"));
    Files.write(tmp.resolve("root/b/broken.png"), new byte[] {1, 2, 3, 4});
    assertThatThrownBy(() -> ImageFolder.read(tmp.resolve("root")))
        .isInstanceOf(DataFileException.class)
        .hasMessageStartingWith("broken.png: cannot be decoded as an image")
        .hasMessageContaining("replace or remove it")
        .hasMessageNotContaining("\n");
  }

  @Test
  void aFolderWithOneClassIsOneLine() throws IOException {
    write(new BufferedImage(2, 2, BufferedImage.TYPE_BYTE_GRAY), tmp.resolve("root/only/x.png"));
    assertThatThrownBy(() -> ImageFolder.read(tmp.resolve("root")))
        .isInstanceOf(DataFileException.class)
        .hasMessage("root: has one class folder 'only'; image classification needs at least two"
            + " sub-folders, one per class, each holding that class's images.");
  }

  @Test
  void mismatchedSizesWithoutResizeAreOneLineAndAResizeFixesThem() throws IOException {
    write(new BufferedImage(4, 4, BufferedImage.TYPE_BYTE_GRAY), tmp.resolve("root/a/x.png"));
    write(new BufferedImage(6, 3, BufferedImage.TYPE_BYTE_GRAY), tmp.resolve("root/b/y.png"));
    LabelledImages r = ImageFolder.read(tmp.resolve("root"));
    assertThatThrownBy(() -> ImagePreprocessing.none().applyAll(r.examples(), "root"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("root: images differ in size (image 0 is 4 x 4, image 1 is 3 x 6) and no resize is set;"
            + " set a resize (--image size=HxW) so every image gets one size.");
    ImmutableList<ImageExample> fixed = ImagePreprocessing.none().withResize(5, 5).applyAll(r.examples(), "root");
    assertThat(fixed).allSatisfy(e -> assertThat(e.pixels()).hasSize(25));
  }

  @Test
  void preprocessingStepsAgreeWithTheirClosedForms() {
    float[] px = new float[16];
    for (int i = 0; i < 16; i++) px[i] = i / 15f;
    ImageExample e = new ImageExample(px, 1, 4, 4, 3);
    // Channels: the grey plane three times; normalisation (x - m) / s per channel.
    ImagePreprocessing p =
        ImagePreprocessing.none().withChannels(3).withNormalization(List.of(0.5, 0.25, 0.0), List.of(0.5, 1.0, 2.0));
    ImageExample out = p.apply(e);
    assertThat(out.channels()).isEqualTo(3);
    for (int i = 0; i < 16; i++) {
      assertThat(out.pixels()[i]).isCloseTo((px[i] - 0.5f) / 0.5f, within(1e-6f));
      assertThat(out.pixels()[16 + i]).isCloseTo(px[i] - 0.25f, within(1e-6f));
      assertThat(out.pixels()[32 + i]).isCloseTo(px[i] / 2f, within(1e-6f));
    }
    // Centre crop 2 x 2 of 4 x 4 takes rows and columns 1..2.
    ImageExample c = ImagePreprocessing.none().withCrop(2, 2).apply(e);
    assertThat(c.pixels()).containsExactly(px[5], px[6], px[9], px[10]);
    // Bilinear resize keeps a constant image constant and the value range of any image.
    float[] flat = new float[16];
    java.util.Arrays.fill(flat, 0.3f);
    ImageExample big = ImagePreprocessing.none().withResize(7, 9).apply(new ImageExample(flat, 1, 4, 4, 0));
    assertThat(big.height()).isEqualTo(7);
    for (float v : big.pixels()) assertThat(v).isCloseTo(0.3f, within(1e-6f));
    ImageExample ramp = ImagePreprocessing.none().withResize(8, 8).apply(e);
    for (float v : ramp.pixels()) assertThat(v).isBetween(0f, 1f + 1e-6f);
  }

  @Test
  void preprocessingTravelsInTheModelMetadata() {
    ImagePreprocessing p =
        ImagePreprocessing.none().withChannels(3).withResize(48, 48).withCrop(44, 40)
            .withNormalization(List.of(0.5), List.of(0.5));
    Model m = new Model(new Graph("g"));
    assertThat(ImagePreprocessing.read(m)).isEmpty();
    p.write(m);
    assertThat(m.metadata().get(ImagePreprocessing.KEY))
        .isEqualTo("{\"channels\":3,\"resize\":[48,48],\"crop\":[44,40],\"mean\":[0.5],\"std\":[0.5]}");
    assertThat(ImagePreprocessing.read(m)).contains(p);
    assertThatThrownBy(() -> ImagePreprocessing.parse("{\"size\":3}", "prep.json"))
        .hasMessage("prep.json: unknown key 'size'; the keys are channels, resize, crop, mean, std.");
  }

  @Test
  void augmentationFlipsOrShiftsButKeepsTheImage() {
    float[] px = new float[12];
    for (int i = 0; i < 12; i++) px[i] = i + 1;
    ImageExample e = new ImageExample(px, 1, 3, 4, 1);
    SplittableRandom random = new SplittableRandom(7);
    int flipped = 0;
    for (int t = 0; t < 40; t++) {
      ImageExample f = new ImageAugmentation(0, true).apply(e, random);
      if (f.pixels()[0] == 4) {
        flipped++;
        assertThat(f.pixels()).containsExactly(4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9);
      } else {
        assertThat(f.pixels()).containsExactly(px);
      }
      // A random crop is a shift: every value it keeps sits at its source moved by one offset.
      ImageExample s = new ImageAugmentation(1, false).apply(e, random);
      for (float v : s.pixels()) assertThat(v == 0 || (v >= 1 && v <= 12)).isTrue();
    }
    assertThat(flipped).isBetween(8, 32);
    assertThat(ImageAugmentation.none().apply(e, random)).isSameAs(e);
  }

  private static void write(BufferedImage img, Path file) throws IOException {
    Files.createDirectories(file.getParent());
    assertThat(ImageIO.write(img, "png", file.toFile())).isTrue();
  }

  private static void writeIdx(Path file, boolean gz, int[] dims, byte[] data) throws IOException {
    try (OutputStream raw = Files.newOutputStream(file);
        OutputStream o = gz ? new GZIPOutputStream(raw) : raw;
        DataOutputStream out = new DataOutputStream(o)) {
      out.writeInt(0x0800 | dims.length);
      for (int d : dims) out.writeInt(d);
      out.write(data);
    }
  }
}
