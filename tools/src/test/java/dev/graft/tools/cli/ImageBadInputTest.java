package dev.graft.tools.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.fixtures.VisionTransformer;
import dev.graft.ir.DataType;
import dev.graft.ir.Dim;
import dev.graft.ir.Model;
import dev.graft.ir.Shape;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.io.ModelIO;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The image path's bad inputs through {@code graft train}: one line on stderr that says what is
 * wrong and how to fix it, exit status 1, no stack trace and no "bug". The model is the ViT
 * fixture, saved with the image input's shape each case needs.
 */
class ImageBadInputTest {
  @TempDir Path dir;

  /** The tiny ViT (1 × 28 × 28 input) with its image input set to {@code dims}. */
  private Path vit(String name, Dim... dims) {
    Model m = VisionTransformer.build(VisionTransformer.Config.tiny().withLayers(1), 1);
    Value x = m.graph().inputs().get(0);
    if (dims.length > 0) x.setType(Type.tensor(DataType.FLOAT, Shape.of(dims)));
    Path p = dir.resolve(name + ".onnx");
    ModelIO.save(m, p);
    return p;
  }

  private CliRun train(Path model, Path data, String... extra) {
    List<String> args = new ArrayList<>(List.of(
        "train", model.toString(), "--recipe", "../examples/recipes/layernorm-affine.yaml", "--train", data.toString(),
        "--epochs", "1", "--threads", "1", "--out", dir.resolve("run").toString()));
    args.addAll(List.of(extra));
    return CliRun.of(args.toArray(String[]::new));
  }

  private static void png(int w, int h, Path file) throws IOException {
    Files.createDirectories(file.getParent());
    ImageIO.write(new BufferedImage(w, h, BufferedImage.TYPE_BYTE_GRAY), "png", file.toFile());
  }

  /** Three 28 × 28 images in each of the given class folders. */
  private Path folder(String... classes) throws IOException {
    Path root = dir.resolve("images");
    for (String c : classes) for (int i = 0; i < 3; i++) png(28, 28, root.resolve(c).resolve(i + ".png"));
    return root;
  }

  @Test
  void anUnreadableImageNamesTheFile() throws Exception {
    Path root = folder("cat", "dog");
    Files.write(root.resolve("dog").resolve("broken.png"), new byte[] {(byte) 0x89, 'P', 'N', 'G', 1, 2, 3});

    CliRun run = train(vit("vit"), root);

    assertOneLine(run);
    assertThat(run.err()).contains("broken.png: cannot be decoded as an image").contains("replace or remove it");
  }

  @Test
  void aFolderWithOneClassSaysHowManyAreNeeded() throws Exception {
    CliRun run = train(vit("vit"), folder("only"));

    assertOneLine(run);
    assertThat(run.err()).contains("has one class folder 'only'").contains("at least two sub-folders");
  }

  @Test
  void imagesOfSeveralSizesWithoutAResizeAskForOne() throws Exception {
    Path root = folder("a", "b");
    png(20, 24, root.resolve("b").resolve("odd.png"));
    // A model whose input fixes no size, so nothing implies a resize.
    Path free = vit("free", Dim.of("batch"), Dim.of(1), Dim.of("height"), Dim.of("width"));

    CliRun run = train(free, root);

    assertOneLine(run);
    assertThat(run.err()).contains("images differ in size").contains("--image size=HxW");
    // With the resize the same data gets past the check.
    assertThat(train(free, root, "--image", "size=28x28").err()).doesNotContain("images differ in size");
  }

  @Test
  void aModelWhoseBatchIsFixedAtOneRefusesALargerBatch() throws Exception {
    Path fixed = vit("batch1", Dim.of(1), Dim.of(1), Dim.of(28), Dim.of(28));

    CliRun run = train(fixed, folder("a", "b"), "--batch-size", "4");

    assertOneLine(run);
    assertThat(run.err()).contains("'pixel_values'").contains("fixed batch of 1").contains("--batch-size 1");
  }

  @Test
  void imagesTooSmallForTheCnnAskForALargerSize() throws Exception {
    CliRun run = CliRun.of(
        "train", dev.graft.fixtures.PretrainedCnn.mobileNetV3().toString(), "--recipe", "../examples/recipes/batchnorm-affine.yaml",
        "--train", folder("a", "b").toString(), "--image", "size=16x16,channels=3", "--epochs", "1", "--threads", "1",
        "--out", dir.resolve("run").toString());

    assertOneLine(run);
    assertThat(run.err()).contains("3 x 16 x 16 images do not fit the model").contains("larger --image size=HxW");
  }

  private static void assertOneLine(CliRun run) {
    assertThat(run.exit()).as("exit status; stdout: %s stderr: %s", run.out(), run.err()).isEqualTo(1);
    assertThat(run.err().lines()).as("stderr: %s", run.err()).hasSize(1);
    assertThat(run.err()).startsWith("graft train: ").doesNotContain("Exception").doesNotContain("bug");
  }
}
