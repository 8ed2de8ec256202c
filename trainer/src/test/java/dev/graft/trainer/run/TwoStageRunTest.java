package dev.graft.trainer.run;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.fixtures.Datasets;
import dev.graft.fixtures.PretrainedModels;
import dev.graft.ir.Model;
import dev.graft.ir.analysis.Verifier;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.recipe.Recipe;
import dev.graft.rewrite.recipe.Stage;
import dev.graft.trainer.task.ClassifyTask;
import dev.graft.trainer.task.HeadKind;
import dev.graft.trainer.train.Device;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The two-stage paradigm end to end on the real all-MiniLM-L6-v2 and the Yelp sentences: stage one
 * trains LayerNorm deltas and a head, stage two adds the top eighth of each FFN down projection's
 * channels by Taylor score on the model stage one trained, and everything trains on.
 */
class TwoStageRunTest {
  private static final int LAYERS = 6;
  private static final long FFN = 1536;
  private static final long HIDDEN = 384;

  private static RunConfig config(Path out, boolean resume) {
    return new RunConfig(
        List.of(Datasets.sentiment("yelp")), List.of(), 0.3, "text", "label", PretrainedModels.miniLmTokenizer(),
        32, 32, 1, 3e-3, 0.1, 0.01, 1.0, 42, Device.cpu(), 1, out, resume, 0);
  }

  private static final String TWO_STAGE =
      """
      stages:
        - name: norms
          passes:
            - method: layernorm-affine
            - method: classification-head
              classes: 2
        - name: channels
          passes:
            - method: taylor-channels
              select: {targets: "layer.*.ffn.down"}
      """;

  @Test
  void trainsBothStagesAndTheTunedModelHoldsEverything(@TempDir Path dir) throws Exception {
    Path out = dir.resolve("run");
    List<String> messages = new ArrayList<>();
    List<EpochMetrics> epochs = new ArrayList<>();
    RunListener listener =
        new RunListener() {
          @Override
          public void message(String line) {
            messages.add(line);
          }

          @Override
          public void epoch(EpochMetrics m) {
            epochs.add(m);
          }
        };
    Recipe recipe = Recipe.parse(TWO_STAGE, "two-stage.yaml");
    TextClassificationRun.Result result =
        new TextClassificationRun(config(out, false), listener).run(PretrainedModels.miniLm(), recipe);

    // metrics.jsonl: one epoch per stage, numbered on, each naming its stage.
    List<JsonObject> lines =
        Files.readAllLines(out.resolve(TextClassificationRun.METRICS)).stream()
            .map(l -> JsonParser.parseString(l).getAsJsonObject())
            .filter(o -> !o.has("type"))
            .toList();
    assertThat(lines).hasSize(2);
    assertThat(lines.stream().map(l -> l.get("epoch").getAsInt())).containsExactly(1, 2);
    assertThat(lines.stream().map(l -> l.get("stage").getAsInt())).containsExactly(1, 2);
    assertThat(result.epochs()).extracting(EpochMetrics::stage).containsExactly(1, 2);
    assertThat(epochs).isEqualTo(result.epochs());

    // Stage two scored the six down projections and kept ceil(384 / 8) = 48 channels of each.
    assertThat(messages).anyMatch(m -> m.startsWith("stage 1/2 (norms)"));
    assertThat(messages).anyMatch(m -> m.startsWith("stage 2/2 (channels)"));
    assertThat(messages)
        .anyMatch(m -> m.startsWith("taylor-channels: scored 6 modules on 8 batches (256 examples); kept the top 1/8")
            && m.contains("layer.0.ffn.down 48/384") && m.contains("layer.5.ffn.down 48/384"));

    Model tuned = ModelIO.load(result.tunedModel());
    Verifier.verify(tuned);
    List<TrainableRegistry.Entry> entries = TrainableRegistry.read(tuned);
    Set<String> methods = new TreeSet<>();
    entries.forEach(e -> methods.add(e.method()));
    assertThat(methods).containsExactly("head", "layernorm-affine", "taylor-channels");
    List<TrainableRegistry.Entry> taylor = entries.stream().filter(e -> e.method().equals("taylor-channels")).toList();
    assertThat(taylor).extracting(TrainableRegistry.Entry::module)
        .containsExactly(
            "layer.0.ffn.down", "layer.1.ffn.down", "layer.2.ffn.down",
            "layer.3.ffn.down", "layer.4.ffn.down", "layer.5.ffn.down");
    long channels = (HIDDEN + 7) / 8;
    for (TrainableRegistry.Entry e : taylor) {
      Tensor dw = tuned.graph().initializer(e.initializer()).orElseThrow().initializer().orElseThrow();
      assertThat(dw.dims()).as(e.initializer()).containsExactly(FFN, channels);
      // It started at zero; stage two trained it.
      assertThat(Arrays.stream(toDoubles(dw)).map(Math::abs).max().orElse(0)).as(e.initializer()).isPositive();
    }
    long taylorParams = LAYERS * FFN * channels;
    long earlier = entries.stream()
        .filter(e -> !e.method().equals("taylor-channels"))
        .mapToLong(e -> tuned.graph().initializer(e.initializer()).orElseThrow().initializer().orElseThrow().numElements())
        .sum();
    assertThat(TrainableRegistry.parameterCount(tuned)).isEqualTo(earlier + taylorParams);
    assertThat(result.trainableParameters()).isEqualTo(earlier + taylorParams);
    assertThat(messages).contains(String.format("trainable parameters: %,d", earlier + taylorParams));

    assertThat(result.last().testAccuracy()).as("test accuracy after both stages").isGreaterThan(0.7);
    System.out.printf("two-stage test accuracy: stage 1 %.4f, stage 2 %.4f%n",
        result.epochs().get(0).testAccuracy(), result.last().testAccuracy());
  }

  @Test
  void multiStageRunsRefuseResumeAndAStageWithoutLogitsOrHeadCannotScore(@TempDir Path dir) {
    Recipe recipe = Recipe.parse(TWO_STAGE, "two-stage.yaml");
    assertThatThrownBy(
            () -> new TextClassificationRun(config(dir.resolve("r"), true), RunListener.SILENT)
                .run(PretrainedModels.miniLm(), recipe))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("--resume and --stop-after work with one-stage recipes only")
        .hasMessageContaining("2 stages");

    Stage selectOnly =
        Recipe.parse("passes: [{method: taylor-channels, select: {targets: 'layer.*.ffn.down'}}]", "s.yaml")
            .stages().get(0);
    // Told to add no head, the classify task refuses a model without logits before scoring.
    assertThatThrownBy(
            () -> new Pipeline(config(dir.resolve("s"), false), RunListener.SILENT)
                .run(PretrainedModels.miniLm(), List.of(selectOnly), new ClassifyTask(HeadKind.NONE)))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("The model has no 'logits' output to classify with")
        .hasMessageContaining("--head none");
  }

  private static double[] toDoubles(Tensor t) {
    float[] f = t.toFloatArray();
    double[] d = new double[f.length];
    for (int i = 0; i < f.length; i++) d[i] = f[i];
    return d;
  }
}
