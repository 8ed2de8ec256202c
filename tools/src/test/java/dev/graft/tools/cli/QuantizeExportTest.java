package dev.graft.tools.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.gson.Gson;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import dev.graft.export.ExportOptions;
import dev.graft.export.ExportVerifier;
import dev.graft.export.MergedExport;
import dev.graft.export.QuantizedExport;
import dev.graft.fixtures.Datasets;
import dev.graft.fixtures.PretrainedModels;
import dev.graft.ir.Model;
import dev.graft.ir.analysis.OpCensus;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.peft.ClassificationHeadPass;
import dev.graft.trainer.data.TextDatasets;
import dev.graft.trainer.data.TextExample;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.function.ToDoubleFunction;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code graft export --quantize int8} on a LoRA-tuned MiniLM with a head: the file shrinks about
 * 4x, every linear weight and embedding table is int8, the accuracies it reports are those {@code
 * graft eval} measures on the written file, and an accuracy loss beyond the tolerance writes
 * nothing.
 */
class QuantizeExportTest {
  @TempDir static Path shared;
  private static Path tuned;
  private static Path test;

  @BeforeAll
  static void tune() throws Exception {
    tuned =
        TrainedMiniLm.tune(
            TrainedMiniLm.base(),
            List.of(
                TrainedMiniLm.loraOnQueryValue(),
                new ClassificationHeadPass(ClassificationHeadPass.Config.of(2, ClassificationHeadPass.Pooling.MEAN).withSeed(5))),
            4,
            shared.resolve("tuned.onnx"));
    // 100 real sentences (Yelp reviews of the UCI sentiment set) as JSONL with text and label.
    JsonArray yelp = new Gson().fromJson(Files.readString(Datasets.sentiment("yelp")), JsonArray.class);
    StringBuilder jsonl = new StringBuilder();
    int n = 0;
    for (JsonElement el : yelp) {
      JsonObject o = el.getAsJsonObject();
      if (o.get("class").isJsonNull()) continue;
      if (n++ == 100) break;
      JsonObject line = new JsonObject();
      line.add("text", o.get("text"));
      line.addProperty("label", o.get("class").getAsInt());
      jsonl.append(line).append('\n');
    }
    test = shared.resolve("test.jsonl");
    Files.writeString(test, jsonl);
  }

  @Test
  void theInt8ExportIsAboutFourTimesSmallerAllInt8AndReportsWhatEvalMeasures(@TempDir Path dir) {
    Path out = dir.resolve("int8.onnx");
    CliRun run =
        CliRun.of("export", tuned.toString(), out.toString(), "--quantize", "int8", "--data", test.toString(), "--max-accuracy-drop", "1");

    assertThat(run.exit()).as(run.err()).isZero();
    System.out.println(run.out());
    Model q = ModelIO.load(out);
    Map<String, Integer> census = OpCensus.of(q.graph());
    // Every linear weight (6 per layer and the head) is int8; the 12 MatMuls left multiply two
    // activations (attention scores and their weighted sum), which have no weight to quantise.
    assertThat(census).containsEntry("MatMulInteger", 6 * 6 + 1).containsEntry("DynamicQuantizeLinear", 4 * 6 + 1).containsEntry("MatMul", 2 * 6);
    assertThat(q.graph().nodes()).filteredOn(nd -> nd.is("MatMul")).noneMatch(nd -> nd.input(1).isInitializer());
    assertThat(run.out()).contains("37 MatMuls on 37 weights and 3 embedding Gathers quantised to int8 per channel");
    double ratio = Double.parseDouble(run.out().replaceAll("(?s).*\\(([0-9.]+)x smaller\\).*", "$1"));
    assertThat(ratio).isGreaterThan(3.5);

    // The reported int8 accuracy is what graft eval measures on the written file.
    double reported = Double.parseDouble(run.out().replaceAll("(?s).*int8 ([0-9.]+) \\(drop.*", "$1"));
    CliRun eval = CliRun.of("eval", out.toString(), "--data", test.toString(), "--json");
    assertThat(eval.exit()).as(eval.err()).isZero();
    double measured = new Gson().fromJson(eval.out(), JsonObject.class).get("accuracy").getAsDouble();
    assertThat(measured).isCloseTo(reported, org.assertj.core.data.Offset.offset(1e-4));

    // Approximate, not broken: the logits stay close to the tuned model's.
    Map<String, Tensor> feeds = ExportVerifier.heldOutInputs(q, 3);
    double diff = ExportVerifier.compare(ModelIO.load(tuned), q, feeds, 1).worst().maxAbsDiff();
    assertThat(diff).isLessThan(0.5);
  }

  @Test
  void aDropBeyondTheToleranceWritesNothing(@TempDir Path dir) {
    Path fp32 = dir.resolve("fp32.onnx");
    MergedExport.write(ModelIO.load(tuned), fp32, ExportOptions.defaults());
    List<TextExample> data = TextDatasets.read(test, "text", "label");
    ToDoubleFunction<Path> accuracy =
        f -> EvalCommand.evaluate(f, data, List.of(), PretrainedModels.miniLmTokenizer(), 128, 64, 0, null).classification().accuracy();
    Path first = dir.resolve("first.onnx");
    QuantizedExport.Result r =
        QuantizedExport.write(ModelIO.load(tuned), ModelIO.load(fp32), fp32, first, accuracy, 1.0, false);
    assertThat(Files.exists(first)).isTrue();

    Path second = dir.resolve("second.onnx");
    if (r.accuracyDrop() > 0) {
      double tight = r.accuracyDrop() / 2;
      assertThatThrownBy(() -> QuantizedExport.write(ModelIO.load(tuned), ModelIO.load(fp32), fp32, second, accuracy, tight, false))
          .isInstanceOf(QuantizedExport.AccuracyDropException.class)
          .hasMessageContaining("Nothing was written");
      assertThat(Files.exists(second)).isFalse();
    } else {
      QuantizedExport.write(ModelIO.load(tuned), ModelIO.load(fp32), fp32, second, accuracy, 0.0, false);
      assertThat(Files.exists(second)).isTrue();
    }
    try (var files = Files.list(dir)) {
      assertThat(files.map(p -> p.getFileName().toString())).noneMatch(s -> s.startsWith(".graft-int8-"));
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  @Test
  void quantizeNeedsTestData() {
    CliRun run = CliRun.of("export", tuned.toString(), shared.resolve("x.onnx").toString(), "--quantize", "int8");
    assertThat(run.exit()).isEqualTo(2);
    assertThat(run.err()).contains("--quantize needs --data TEST");
  }
}
