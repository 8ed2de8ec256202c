package dev.graft.tools.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtProvider;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.ir.Model;
import dev.graft.ir.io.ModelIO;
import dev.graft.rewrite.TrainableRegistry;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import javax.xml.parsers.DocumentBuilderFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code graft train} and {@code graft eval} on the real all-MiniLM-L6-v2 and the Yelp part of the
 * UCI sentiment data, kept small (one source, short sequences) so the class runs in about a minute.
 */
class TrainCommandTest {
  private static final Path RECIPES = Path.of("..", "examples", "recipes");

  private static String[] train(Path out, String recipe, int epochs, String... extra) {
    List<String> args = new java.util.ArrayList<>(List.of(
        "train", "--recipe", RECIPES.resolve(recipe).toString(), "--train", "sentiment:yelp",
        "--test-fraction", "0.3", "--max-length", "32", "--epochs", Integer.toString(epochs),
        "--threads", "1", "--out", out.toString()));
    args.addAll(List.of(extra));
    return args.toArray(String[]::new);
  }

  /** The epoch lines of metrics.jsonl (step lines have "type": "step"). */
  private static List<JsonObject> metrics(Path run) throws Exception {
    return Files.readAllLines(run.resolve("metrics.jsonl")).stream()
        .map(l -> JsonParser.parseString(l).getAsJsonObject())
        .filter(o -> !o.has("type"))
        .toList();
  }

  @Test
  void trainsLoraWritesTheRunFolderAndEvalAgreesOnTheTunedModel(@TempDir Path dir) throws Exception {
    Path run = dir.resolve("lora");
    CliRun r = CliRun.of(train(run, "quickstart.yaml", 1, "--lr", "3e-3"));
    assertThat(r.exit()).as(r.err()).isZero();
    assertThat(r.out()).contains("lora: 12 changes, 73,728 trainable parameters added").contains("test accuracy");

    List<JsonObject> lines = metrics(run);
    assertThat(lines).hasSize(1);
    JsonObject m = lines.get(0);
    assertThat(m.keySet()).contains("epoch", "train_loss", "test_accuracy");
    assertThat(m.get("test_accuracy").getAsDouble()).isGreaterThan(0.7);
    assertThat(Files.size(run.resolve("checkpoint.safetensors"))).isPositive();
    // The plot is well-formed SVG with four series: the step losses raw and smoothed, the test
    // loss and the test accuracy.
    var svg = DocumentBuilderFactory.newInstance().newDocumentBuilder().parse(run.resolve("metrics.svg").toFile());
    assertThat(svg.getElementsByTagName("polyline").getLength()).isEqualTo(4);

    Model tuned = ModelIO.load(run.resolve("tuned.onnx"));
    assertThat(tuned.metadata()).containsKey("graft.labels");
    assertThat(TrainableRegistry.parameterCount(tuned)).isEqualTo(73_728 + 770);

    // graft eval on the saved model, through its own ORT session, must reach the accuracy that
    // the trainer's eval graph measured on the same held-out split (parameters as inputs there,
    // initializers here: float rounding may flip at most a near-tie or two).
    Path test = run.resolve("test-split.jsonl");
    assertThat(Files.readAllLines(test)).hasSize(300);
    CliRun eval = CliRun.of("eval", run.resolve("tuned.onnx").toString(), "--data", test.toString(),
        "--max-length", "32", "--json");
    assertThat(eval.exit()).as(eval.err()).isZero();
    JsonObject e = JsonParser.parseString(eval.out()).getAsJsonObject();
    assertThat(e.get("accuracy").getAsDouble())
        .isCloseTo(m.get("test_accuracy").getAsDouble(), within(2.0 / 300));
    assertThat(e.keySet()).contains("macroF1", "confusion");
  }

  @Test
  void aModelInExternalDataIsTrainedWithoutCopyingItsFrozenWeights(@TempDir Path dir) throws Exception {
    Path base = dir.resolve("base.onnx");
    ModelIO.save(ModelIO.load(dev.graft.fixtures.PretrainedModels.miniLm()), base, dev.graft.ir.io.SaveOptions.external());
    Path run = dir.resolve("run");
    List<String> args = new java.util.ArrayList<>(List.of(train(run, "head-only.yaml", 1)));
    args.add(1, base.toString());
    CliRun r = CliRun.of(args.toArray(String[]::new));
    assertThat(r.exit()).as(r.err()).isZero();
    assertThat(r.out()).contains("frozen weights hard-linked: tuned.onnx.base.data");
    assertThat(Files.isSameFile(run.resolve("tuned.onnx.base.data"), dir.resolve("base.onnx.data"))).isTrue();
    // Every frozen weight reads back with the base's bytes, and the base can go.
    java.util.Map<String, java.nio.ByteBuffer> before = new java.util.HashMap<>();
    for (var v : ModelIO.load(base).graph().initializers()) {
      java.nio.ByteBuffer data = v.initializer().orElseThrow().rawData();
      byte[] copy = new byte[data.remaining()];
      data.duplicate().get(copy);
      before.put(v.name(), java.nio.ByteBuffer.wrap(copy));
    }
    Files.delete(dir.resolve("base.onnx.data"));
    Model tuned = ModelIO.load(run.resolve("tuned.onnx"));
    before.forEach((name, bytes) ->
        assertThat(tuned.graph().initializer(name).orElseThrow().initializer().orElseThrow().rawData()).as(name).isEqualTo(bytes));
    assertThat(TrainableRegistry.parameterCount(tuned)).isEqualTo(770);
    CliRun eval = CliRun.of("eval", run.resolve("tuned.onnx").toString(), "--data",
        run.resolve("test-split.jsonl").toString(), "--max-length", "32", "--json");
    assertThat(eval.exit()).as(eval.err()).isZero();
  }

  @Test
  void aResumedRunContinuesExactlyWhereItStopped(@TempDir Path dir) throws Exception {
    Path whole = dir.resolve("whole");
    assertThat(CliRun.of(train(whole, "head-only.yaml", 2)).exit()).isZero();
    Path parts = dir.resolve("parts");
    assertThat(CliRun.of(train(parts, "head-only.yaml", 2, "--stop-after", "1")).exit()).isZero();
    assertThat(metrics(parts)).hasSize(1);
    CliRun resumed = CliRun.of(train(parts, "head-only.yaml", 2, "--resume"));
    assertThat(resumed.exit()).as(resumed.err()).isZero();
    assertThat(resumed.out()).contains("resumed after epoch 1");
    List<JsonObject> a = metrics(whole);
    List<JsonObject> b = metrics(parts);
    assertThat(b).hasSize(2);
    for (String key : List.of("train_loss", "test_loss", "test_accuracy")) {
      assertThat(b.get(1).get(key).getAsDouble()).as(key).isCloseTo(a.get(1).get(key).getAsDouble(), within(1e-6));
    }
  }

  @Test
  void bucketByLengthTakesAnOptionalPoolAndIsOffByDefault() {
    TrainCommand off = new TrainCommand();
    new picocli.CommandLine(off).parseArgs("--out", "r");
    assertThat(off.bucketByLength).isZero();
    TrainCommand flag = new TrainCommand();
    new picocli.CommandLine(flag).parseArgs("--out", "r", "--bucket-by-length");
    assertThat(flag.bucketByLength).isEqualTo(50);
    TrainCommand pool = new TrainCommand();
    new picocli.CommandLine(pool).parseArgs("--out", "r", "--bucket-by-length=20");
    assertThat(pool.bucketByLength).isEqualTo(20);
  }

  @Test
  void badArgumentsAreOneClearLine(@TempDir Path dir) {
    CliRun noData = CliRun.of("train", "--recipe", RECIPES.resolve("quickstart.yaml").toString(),
        "--train", dir.resolve("missing.csv").toString(), "--out", dir.resolve("r").toString());
    assertThat(noData.exit()).isEqualTo(1);
    assertThat(noData.err().strip().lines()).hasSize(1);
    assertThat(noData.err()).contains("missing.csv").contains("does not exist");

    Path data = dir.resolve("two.csv");
    try {
      java.nio.file.Files.writeString(data, "text,label\ngood film,pos\nbad film,neg\n");
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
    CliRun badPool = CliRun.of("train", "--recipe", RECIPES.resolve("quickstart.yaml").toString(),
        "--train", data.toString(), "--out", dir.resolve("r").toString(), "--bucket-by-length=-4");
    assertThat(badPool.exit()).isEqualTo(1);
    assertThat(badPool.err().strip().lines()).hasSize(1);
    assertThat(badPool.err()).contains("length-bucket pool").contains("-4");

    CliRun badSource = CliRun.of("eval", "x.onnx", "--data", "sentiment:twitter");
    assertThat(badSource.exit()).isEqualTo(1);
    assertThat(badSource.err().strip().lines()).hasSize(1);

    // CUDA on the CPU build of ONNX Runtime: refused before the data is read, not at the first session.
    if (!OrtEnvironment.getAvailableProviders().contains(OrtProvider.CUDA)) {
      CliRun cuda = CliRun.of("train", "--recipe", RECIPES.resolve("quickstart.yaml").toString(),
          "--train", data.toString(), "--out", dir.resolve("r").toString(), "--device", "cuda");
      assertThat(cuda.exit()).isEqualTo(1);
      assertThat(cuda.err().strip().lines()).hasSize(1);
      assertThat(cuda.err()).contains("Cannot use device cuda:0").contains("onnxruntime_gpu jar (build with -Pcuda)")
          .contains("CPU");
      assertThat(cuda.out()).as("nothing read or built before the refusal").isEmpty();
    }
  }
}
