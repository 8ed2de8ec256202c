package dev.graft.rewrite.recipe;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.common.collect.ImmutableList;
import dev.graft.fixtures.PretrainedModels;
import dev.graft.ir.Model;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.rewrite.GraphPass;
import dev.graft.rewrite.method.AppliedPass;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.peft.ClassificationHeadPass;
import dev.graft.rewrite.peft.LayerNormAffinePass;
import dev.graft.rewrite.peft.LoraPass;
import dev.graft.rewrite.peft.TaylorChannelPass;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import org.junit.jupiter.api.Test;

/** Recipes with {@code stages:}, and the deferred Taylor selection a stage may end with. */
class RecipeStagesTest {
  private static final String TWO_STAGE =
      """
      description: two stages
      stages:
        - name: norms
          epochs: 2
          passes:
            - method: layernorm-affine
            - method: classification-head
              classes: 2
        - passes:
            - method: lora
              rank: 4
            - method: taylor-channels
              select: {targets: "layer.*.ffn.down", fraction: 0.25, batches: 3}
              init-std: 0.01
              seed: 7
      """;

  @Test
  void stagesKeepTheirPassesEpochsNamesAndSelection() {
    Recipe r = Recipe.parse(TWO_STAGE, "two.yaml");

    assertThat(r.stages()).hasSize(2);
    Stage first = r.stages().get(0);
    assertThat(first.name()).isEqualTo("norms");
    assertThat(first.epochs()).isEqualTo(OptionalInt.of(2));
    assertThat(first.epochsOr(5)).isEqualTo(2);
    assertThat(first.passes()).hasSize(2);
    assertThat(AppliedPass.unwrap(first.passes().get(0))).isInstanceOf(LayerNormAffinePass.class);
    assertThat(AppliedPass.unwrap(first.passes().get(1))).isInstanceOf(ClassificationHeadPass.class);
    assertThat(first.taylor()).isEmpty();

    Stage second = r.stages().get(1);
    assertThat(second.name()).isEqualTo("stage 2");
    assertThat(second.epochs()).isEmpty();
    assertThat(second.epochsOr(5)).isEqualTo(5);
    // The selection is lifted out of the passes: they run first, then the trainer resolves it.
    assertThat(AppliedPass.unwrap(second.passes().get(0))).isInstanceOf(LoraPass.class);
    assertThat(second.passes()).hasSize(1);
    TaylorSelection t = second.taylor().orElseThrow();
    assertThat(t.targets().spec()).isEqualTo("layer.*.ffn.down");
    assertThat(t.fraction()).isEqualTo(0.25);
    assertThat(t.batches()).isEqualTo(3);
    assertThat(t.initStd()).isEqualTo(0.01);
    assertThat(t.seed()).isEqualTo(7);

    assertThat(r.methods()).containsExactly("layernorm-affine", "classification-head", "lora", "taylor-channels");
    assertThat(r.needsTraining()).isTrue();
  }

  @Test
  void aPlainPassesRecipeIsOneStage() {
    Recipe r = Recipe.parse("passes: [{method: lora}, {method: classification-head, classes: 3}]", "one.yaml");
    assertThat(r.stages()).singleElement().satisfies(s -> {
      assertThat(s.name()).isEqualTo("stage 1");
      assertThat(s.epochs()).isEmpty();
      assertThat(s.taylor()).isEmpty();
      assertThat(s.passes()).isEqualTo(r.passes());
    });
    assertThat(r.passes()).hasSize(2);
    assertThat(r.needsTraining()).isFalse();
    // One stage written as stages: is the same thing.
    Recipe staged = Recipe.parse("stages: [{passes: [{method: lora}]}]", "s.yaml");
    assertThat(staged.needsTraining()).isFalse();
    assertThat(staged.passes()).hasSize(1);
    assertThat(AppliedPass.unwrap(staged.passes().get(0))).isInstanceOf(LoraPass.class);
  }

  @Test
  void passesOfARecipeThatNeedsTrainingIsAClearError() {
    Recipe r = Recipe.parse(TWO_STAGE, "two.yaml");
    assertThatThrownBy(r::passes)
        .isInstanceOf(IllegalStateException.class)
        .hasMessageContaining("Recipe two.yaml has 2 stages, with training between them")
        .hasMessageContaining("graft train")
        .hasMessageContaining("stages()");
    assertThatThrownBy(r::manager).hasMessageContaining("2 stages");

    Recipe oneStage =
        Recipe.parse("passes: [{method: taylor-channels, select: {targets: 'layer.*.ffn.down'}}]", "sel.yaml");
    assertThat(oneStage.stages()).singleElement().satisfies(s -> assertThat(s.passes()).isEmpty());
    assertThatThrownBy(oneStage::passes)
        .hasMessageContaining("Recipe sel.yaml picks Taylor channels in stage 1 from training data")
        .hasMessageContaining("graft train");
  }

  @Test
  void selectDefaultsToTheTopEighthOnEightBatchesAndResolvesOnMiniLm() throws Exception {
    Recipe r = Recipe.parse("passes: [{method: taylor-channels, select: {targets: 'layer.*.ffn.down'}}]", "d.yaml");
    TaylorSelection t = r.stages().get(0).taylor().orElseThrow();
    assertThat(t.fraction()).isEqualTo(1.0 / 8);
    assertThat(t.batches()).isEqualTo(8);
    assertThat(t.initStd()).isZero();

    Model m = WorkingModels.load(PretrainedModels.miniLm());
    assertThat(t.modules(m))
        .containsExactly(
            "layer.0.ffn.down", "layer.1.ffn.down", "layer.2.ffn.down",
            "layer.3.ffn.down", "layer.4.ffn.down", "layer.5.ffn.down");
    // The chosen lists become an ordinary channel pass: 1536 inputs times the channels kept.
    TaylorChannelPass pass = t.pass(Map.of("layer.3.ffn.down", List.of(5, 1, 300)));
    PassResult applied = pass.run(m);
    assertThat(applied.parametersAdded()).isEqualTo(1536L * 3);
    assertThat(TrainableRegistry.modulesOf(m, "taylor-channels")).containsExactly("layer.3.ffn.down");

    // Run as a pass, the unresolved selection says where it belongs.
    assertThatThrownBy(() -> t.run(m))
        .isInstanceOf(IllegalStateException.class)
        .hasMessageContaining("graft train")
        .hasMessageContaining("'channels:'");
    // A target that matches no linear module lists the ones that exist.
    TaylorSelection typo =
        Recipe.parse("passes: [{method: taylor-channels, select: {targets: 'layer.*.ffn.dwn'}}]", "d.yaml")
            .stages().get(0).taylor().orElseThrow();
    assertThatThrownBy(() -> typo.modules(m))
        .hasMessageContaining("target 'layer.*.ffn.dwn' matches no linear or ungrouped conv module")
        .hasMessageContaining("globs in layers 0..5").hasMessageContaining("layer.*.ffn.down");
  }

  @Test
  void stageStructureErrorsNameTheStageAndTheValidKeys() {
    assertThatThrownBy(() -> Recipe.parse("passes: [{method: lora}]\nstages: [{passes: [{method: lora}]}]", "b.yaml"))
        .hasMessageStartingWith("Recipe b.yaml: give 'passes' (one stage) or 'stages' (several");
    assertThatThrownBy(() -> Recipe.parse("stages: []", "b.yaml"))
        .hasMessageStartingWith("Recipe b.yaml: 'stages' must be a non-empty list of stages");
    assertThatThrownBy(() -> Recipe.parse("stages: [lora]", "b.yaml"))
        .hasMessage(
            "Recipe b.yaml, stages[0] must be a map with the keys name, epochs, passes (passes required), got 'lora'.");
    assertThatThrownBy(() -> Recipe.parse("stages: [{passes: [{method: lora}]}, {epoch: 2, passes: [{method: ia3}]}]", "b.yaml"))
        .hasMessage("Recipe b.yaml, stages[1]: unknown key 'epoch'; valid keys of a stage are name, epochs, passes.");
    assertThatThrownBy(() -> Recipe.parse("stages: [{epochs: 0, passes: [{method: lora}]}]", "b.yaml"))
        .hasMessageStartingWith("Recipe b.yaml, stages[0]: 'epochs' must be an integer of at least 1, got integer 0");
    assertThatThrownBy(() -> Recipe.parse("stages: [{epochs: two, passes: [{method: lora}]}]", "b.yaml"))
        .hasMessageStartingWith("Recipe b.yaml, stages[0]: 'epochs' must be an integer of at least 1, got 'two'");
    assertThatThrownBy(() -> Recipe.parse("stages: [{name: [a], passes: [{method: lora}]}]", "b.yaml"))
        .hasMessage("Recipe b.yaml, stages[0]: 'name' must be a non-empty string, got a list.");
    assertThatThrownBy(() -> Recipe.parse("stages: [{name: x}]", "b.yaml"))
        .hasMessageStartingWith("Recipe b.yaml, stages[0]: 'passes' must be a non-empty list of passes");
    assertThatThrownBy(() -> Recipe.parse("stages: [{passes: [{method: lora}]}, {passes: [{method: loar}]}]", "b.yaml"))
        .hasMessageStartingWith("Recipe b.yaml, stages[1].passes[0]: unknown method 'loar'; valid methods are lora,");
    assertThatThrownBy(() -> Recipe.parse("stages: [{passes: [{method: lora}, {method: lora, rnak: 2}]}]", "b.yaml"))
        .hasMessageStartingWith("Recipe b.yaml, stages[0].passes[1] (lora): unknown option 'rnak'; valid options for lora");
  }

  @Test
  void selectErrorsNameTheEntryAndTheValidOptions() {
    String at = "Recipe s.yaml, stages[1].passes[0] (taylor-channels)";
    assertThatThrownBy(() -> Recipe.parse(twoStageWith("{targets: 'layer.*.ffn.down', fractoin: 0.1}"), "s.yaml"))
        .hasMessage(at + ", select: unknown option 'fractoin'; valid options of 'select' are targets, layers, fraction, batches.");
    assertThatThrownBy(() -> Recipe.parse(twoStageWith("{fraction: 0.1}"), "s.yaml"))
        .hasMessageStartingWith(at + ", select: option 'targets' is required");
    assertThatThrownBy(() -> Recipe.parse(twoStageWith("{targets: 'layer.*.ffn.down', fraction: 1.5}"), "s.yaml"))
        .hasMessage(at + ", select: option 'fraction' must be in (0, 1], got 1.5");
    assertThatThrownBy(() -> Recipe.parse(twoStageWith("{targets: 'layer.*.ffn.down', batches: 0}"), "s.yaml"))
        .hasMessage(at + ", select: option 'batches' must be at least 1, got 0");
    assertThatThrownBy(() -> Recipe.parse(twoStageWith("{targets: 'layer.*.ffn.down', batches: many}"), "s.yaml"))
        .hasMessage(at + ", select: option 'batches' must be an integer, got 'many'");
    assertThatThrownBy(() -> Recipe.parse(twoStageWith("{targets: 7}"), "s.yaml"))
        .hasMessageStartingWith(at + ", select: option 'targets' must be a module-name glob or a non-empty list of globs");
    assertThatThrownBy(() -> Recipe.parse(twoStageWith("'layer.*.ffn.down'"), "s.yaml"))
        .hasMessage(at + ": option 'select' must be a map with the keys targets, layers, fraction, batches, got 'layer.*.ffn.down'");
    assertThatThrownBy(() -> Recipe.parse(twoStageWith("{targets: x, fraction: }"), "s.yaml"))
        .hasMessage(at + ", select: option 'fraction' has no value; give one or remove it.");

    assertThatThrownBy(
            () -> Recipe.parse("passes: [{method: taylor-channels, select: {targets: x}, channels: {x: [1]}}]", "s.yaml"))
        .hasMessage(
            "Recipe s.yaml, passes[0] (taylor-channels): give 'channels' (the lists) or 'select' (how training picks"
                + " them), not both");
    assertThatThrownBy(() -> Recipe.parse("passes: [{method: taylor-channels}]", "s.yaml"))
        .hasMessageStartingWith("Recipe s.yaml, passes[0] (taylor-channels): option 'channels' or 'select' is required");
    assertThatThrownBy(
            () -> Recipe.parse(
                "stages: [{passes: [{method: taylor-channels, select: {targets: x}}, {method: lora}]}]", "s.yaml"))
        .hasMessageStartingWith(
            "Recipe s.yaml, stages[0].passes[1]: a taylor-channels 'select' must be the last entry of its stage");
    // The list form still works beside it.
    GraphPass listed =
        Recipe.parse("passes: [{method: taylor-channels, channels: {layer.0.ffn.down: [1, 2]}}]", "s.yaml").passes().get(0);
    assertThat(((TaylorChannelPass) AppliedPass.unwrap(listed)).config().channels()).containsEntry("layer.0.ffn.down", ImmutableList.of(1, 2));
  }

  @Test
  void aStageHoldsItsSelectionApartFromItsPasses() {
    TaylorSelection t = new TaylorSelection(dev.graft.rewrite.Targets.glob("layer.*.ffn.down"), 0.125, 8, 0, 0);
    assertThatThrownBy(() -> new Stage("s", ImmutableList.of(t), OptionalInt.empty(), Optional.empty()))
        .hasMessageContaining("give it as the stage's taylor");
    assertThatThrownBy(() -> new Stage("s", ImmutableList.of(), OptionalInt.empty(), Optional.empty()))
        .hasMessageContaining("Stage 's' has nothing to apply");
    assertThat(new Stage("s", ImmutableList.of(), OptionalInt.of(1), Optional.of(t)).taylor()).contains(t);
  }

  private static String twoStageWith(String select) {
    return "stages:\n  - passes: [{method: layernorm-affine}]\n  - passes:\n      - method: taylor-channels\n        select: "
        + select + "\n";
  }
}
