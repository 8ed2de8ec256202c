package dev.graft.tools.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.fixtures.PretrainedModels;
import dev.graft.ir.Model;
import dev.graft.ir.analysis.OpCensus;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.ir.io.ModelIO;
import dev.graft.rewrite.PassManager;
import dev.graft.rewrite.peft.ClassificationHeadPass;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * examples/recipes/two-stage.yaml through the CLI: {@code graft train} runs both stages on the
 * real all-MiniLM-L6-v2 (Yelp sentences, short sequences, one epoch per stage), {@code graft export
 * --merge} folds the LayerNorm and Taylor-channel deltas away, and {@code graft rewrite} refuses
 * the recipe, which needs training between its stages.
 */
class TwoStageTest {
  private static final Path RECIPE = Path.of("..", "examples", "recipes", "two-stage.yaml");

  @Test
  void trainThenMergedExportLeavesTheBaseGraphPlusTheHead(@TempDir Path dir) throws Exception {
    Path run = dir.resolve("run");
    CliRun train = CliRun.of(
        "train", "--recipe", RECIPE.toString(), "--train", "sentiment:yelp", "--test-fraction", "0.3",
        "--max-length", "32", "--epochs", "1", "--lr", "3e-3", "--threads", "1", "--out", run.toString());
    assertThat(train.exit()).as(train.err()).isZero();
    assertThat(train.out())
        .contains("stage 1/2 (layernorm-affine): 1 epochs")
        .contains("stage 2/2 (taylor-channels): 1 epochs")
        .contains("taylor-channels: scored 6 modules on 8 batches")
        .contains("layer.3.ffn.down 48/384")
        .contains("taylor-channels: 6 changes, 442,368 trainable parameters added")
        .contains("epoch 2: train loss");
    // The epoch lines (the per-step lines carry "type": "step").
    List<JsonObject> metrics = Files.readAllLines(run.resolve("metrics.jsonl")).stream()
        .map(l -> JsonParser.parseString(l).getAsJsonObject())
        .filter(o -> !o.has("type"))
        .toList();
    assertThat(metrics).extracting(m -> m.get("stage").getAsInt()).containsExactly(1, 2);
    double accuracy = metrics.get(1).get("test_accuracy").getAsDouble();
    assertThat(accuracy).isGreaterThan(0.7);

    Path merged = dir.resolve("merged.onnx");
    CliRun export = CliRun.of("export", run.resolve("tuned.onnx").toString(), merged.toString(), "--merge");
    assertThat(export.exit()).as(export.err()).isZero();
    assertThat(export.out()).contains("Verified: max |export - tuned| = ").contains("Wrote " + merged);

    // Every delta folded: the merged graph is the base (at the working opset, as training runs it)
    // with the head the recipe added, op for op.
    Model expected = WorkingModels.load(PretrainedModels.miniLm());
    new PassManager(List.of(new ClassificationHeadPass(ClassificationHeadPass.Config.of(2, ClassificationHeadPass.Pooling.MEAN))))
        .run(expected);
    assertThat(OpCensus.of(ModelIO.load(merged).graph())).isEqualTo(OpCensus.of(expected.graph()));

    // The merged model, in its own ORT session, classifies the held-out split as training measured.
    CliRun eval = CliRun.of("eval", merged.toString(), "--data", run.resolve("test-split.jsonl").toString(),
        "--max-length", "32", "--json");
    assertThat(eval.exit()).as(eval.err()).isZero();
    assertThat(JsonParser.parseString(eval.out()).getAsJsonObject().get("accuracy").getAsDouble())
        .isCloseTo(accuracy, within(2.0 / 300));
  }

  @Test
  void rewriteRefusesARecipeThatNeedsTraining(@TempDir Path dir) {
    CliRun r = CliRun.of("rewrite", PretrainedModels.miniLm().toString(), dir.resolve("out.onnx").toString(),
        "--recipe", RECIPE.toString());
    assertThat(r.exit()).isEqualTo(1);
    assertThat(r.err().strip().lines()).hasSize(1);
    assertThat(r.err())
        .contains("Recipe two-stage.yaml has 2 stages and needs training between them")
        .contains("use graft train --recipe");
    assertThat(dir.resolve("out.onnx")).doesNotExist();
  }
}
