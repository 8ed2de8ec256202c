package dev.graft.trainer.run;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.fixtures.Datasets;
import dev.graft.fixtures.PretrainedModels;
import dev.graft.ir.Model;
import dev.graft.ir.analysis.OpCensus;
import dev.graft.ir.io.ModelIO;
import dev.graft.rewrite.recipe.Recipe;
import dev.graft.trainer.task.ClassifyTask;
import dev.graft.trainer.task.HeadKind;
import dev.graft.trainer.train.Device;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A training run on the real int8 all-MiniLM-L6-v2 (ONNX Runtime's dynamic quantisation): a
 * recipe trains its float form, a head alone trains on the int8 backbone as it is.
 */
class Int8TrainingRunTest {
  private static RunConfig config(Path out) {
    return new RunConfig(
        List.of(Datasets.sentiment("yelp")), List.of(), 0.3, "text", "label", PretrainedModels.miniLmTokenizer(),
        32, 32, 1, 2e-3, 0.1, 0.01, 1.0, 42, Device.cpu(), 2, out, false, 0);
  }

  @Test
  void aRecipeTrainsTheFloatFormAndAHeadAloneKeepsTheInt8Backbone(@TempDir Path dir) throws Exception {
    List<String> messages = new ArrayList<>();
    RunListener listener = new RunListener() {
      @Override
      public void message(String line) {
        messages.add(line);
      }
    };
    Recipe lora = Recipe.parse(
        """
        passes:
          - {method: lora, targets: ["layer.*.attention.query", "layer.*.attention.value"], rank: 8, alpha: 16}
          - {method: classification-head, classes: 2, pooling: mean}
        """,
        "quickstart.yaml");
    TextClassificationRun.Result tuned =
        new TextClassificationRun(config(dir.resolve("lora")), listener).run(PretrainedModels.miniLmQuantized(), lora);
    assertThat(messages).anyMatch(m -> m.startsWith("int8 model: 36 MatMulInteger linears (36 weights) and 3"));
    assertThat(messages).anyMatch(m -> m.startsWith("lora: 12 changes"));
    Map<String, Integer> census = OpCensus.of(ModelIO.load(tuned.tunedModel()).graph());
    assertThat(census).doesNotContainKeys("MatMulInteger", "DynamicQuantizeLinear", "DequantizeLinear");
    // Yelp's 300 held-out sentences after one epoch: well above chance (the float model: 0.86-0.9).
    assertThat(tuned.last().test().get("accuracy")).isGreaterThan(0.75);

    messages.clear();
    RunResult head =
        new Pipeline(config(dir.resolve("head")), listener)
            .runHeadOnly(PretrainedModels.miniLmQuantized(), new ClassifyTask(HeadKind.MEAN, 42));
    assertThat(messages).noneMatch(m -> m.startsWith("int8 model"));
    Model headOnly = ModelIO.load(head.tunedModel());
    assertThat(OpCensus.of(headOnly.graph())).containsEntry("MatMulInteger", 36);
  }
}
