package dev.graft.rewrite.recipe;

import dev.graft.ir.convert.WorkingModels;
import dev.graft.rewrite.method.AppliedPass;
import dev.graft.rewrite.method.Methods;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.graft.fixtures.PretrainedModels;
import dev.graft.fixtures.TinyModels;
import dev.graft.ir.Model;
import dev.graft.rewrite.GraphPass;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.peft.BottleneckAdapter;
import dev.graft.rewrite.peft.ClassificationHeadPass;
import dev.graft.rewrite.peft.LayerNormAffinePass;
import dev.graft.rewrite.peft.LoraPass;
import dev.graft.rewrite.peft.ParallelAdapterPass;
import dev.graft.rewrite.peft.PrefixTuningPass;
import dev.graft.rewrite.peft.PromptTuningPass;
import dev.graft.rewrite.peft.UTuningPass;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class RecipeTest {
  private static final String LORA_YAML =
      """
      # LoRA r=8, alpha 16 on every layer's query and value
      passes:
        - method: lora
          targets: ["layer.*.attention.query", "layer.*.attention.value"]
          layers: [0, 5]
          rank: 8
          alpha: 16
          dropout: 0.1
        - method: classification-head
          classes: 2
          pooling: mean
      """;

  @Test
  void yamlRecipeBuildsThePassesWithTheirOptions() {
    Recipe r = Recipe.parse(LORA_YAML, "lora.yaml");
    assertThat(r.methods()).containsExactly("lora", "classification-head");
    LoraPass lora = (LoraPass) AppliedPass.unwrap(r.passes().get(0));
    assertThat(lora.config()).isEqualTo(new LoraPass.Config(8, 16, false, 0.1, LoraPass.Init.KAIMING_UNIFORM, 0));
    assertThat(lora.targets().describe())
        .isEqualTo("layer.*.attention.query, layer.*.attention.value in layers 0..5");
    assertThat(AppliedPass.unwrap(r.passes().get(1))).isInstanceOf(ClassificationHeadPass.class);
  }

  @Test
  void jsonIsReadByTheSameParser() {
    String json =
        """
        {"passes": [{"method": "lora", "targets": "layer.*.attention.{query,value}", "rank": 4, "alpha": 1e1,
                     "rslora": true, "init": "gaussian", "seed": 3}]}
        """;
    LoraPass lora = (LoraPass) AppliedPass.unwrap(Recipe.parse(json, "lora.json").passes().get(0));
    assertThat(lora.config()).isEqualTo(new LoraPass.Config(4, 10, true, 0, LoraPass.Init.GAUSSIAN, 3));
  }

  /** The recipe's passes do on MiniLM what the closed form says: 6 layers x 2 x (384*8 + 8*384). */
  @Test
  void recipeAppliesToMiniLmWithTheClosedFormCount() throws Exception {
    Model m = WorkingModels.load(PretrainedModels.miniLm());
    List<PassResult> results = Recipe.parse(LORA_YAML, "lora.yaml").manager().run(m);
    assertThat(results.get(0).changes()).hasSize(12);
    assertThat(results.get(0).parametersAdded()).isEqualTo(73_728L);
    assertThat(results.get(1).parametersAdded()).isEqualTo(384 * 2 + 2);
    assertThat(TrainableRegistry.parameterCount(m)).isEqualTo(73_728L + 770);

    Model two = WorkingModels.load(PretrainedModels.miniLm());
    String firstTwoLayers = LORA_YAML.replace("[0, 5]", "\"1-2\"");
    PassResult r = Recipe.parse(firstTwoLayers, "x.yaml").passes().get(0).run(two);
    assertThat(r.changes())
        .containsExactlyInAnyOrder(
            "lora(r=8) layer.1.attention.query",
            "lora(r=8) layer.1.attention.value",
            "lora(r=8) layer.2.attention.query",
            "lora(r=8) layer.2.attention.value");
  }

  @Test
  void defaultTargetsAndRegexTargets() {
    LoraPass byDefault = (LoraPass) AppliedPass.unwrap(Recipe.parse("passes: [{method: lora}]", "d.yaml").passes().get(0));
    assertThat(byDefault.targets().spec()).isEqualTo("layer.*.attention.{query,value}");
    GraphPass norms =
        Recipe.parse("passes: [{method: layernorm-affine, targets: '/layer\\.[01]\\..*norm/'}]", "n.yaml").passes().get(0);
    assertThat(AppliedPass.unwrap(norms)).isInstanceOf(LayerNormAffinePass.class);
    Model m = TinyModels.bertLike(TinyModels.Flavour.FUSED_OPSET17);
    PassResult r = norms.dryRun(m);
    assertThat(r.changes()).isNotEmpty().allMatch(c -> c.matches("layernorm-affine layer\\.[01]\\..*norm"));
  }

  @Test
  void unknownOptionNamesFileIndexAndValidOptions() {
    String bad = "passes:\n  - method: classification-head\n    classes: 2\n  - method: lora\n    rnak: 8\n";
    assertThatThrownBy(() -> Recipe.parse(bad, "my.yaml"))
        .hasMessage(
            "Recipe my.yaml, passes[1] (lora): unknown option 'rnak'; valid options for lora are method, targets,"
                + " layers, rank, alpha, rslora, dropout, init, seed.");
  }

  @Test
  void unknownMethodListsTheMethods() {
    assertThatThrownBy(() -> Recipe.parse("passes: [{method: loar}]", "my.yaml"))
        .hasMessage(
            "Recipe my.yaml, passes[0]: unknown method 'loar'; valid methods are "
                + String.join(", ", Methods.FACTORIES.keySet())
                + ".");
    assertThatThrownBy(() -> Recipe.parse("passes: [{rank: 8}]", "my.yaml"))
        .hasMessageStartingWith("Recipe my.yaml, passes[0]: no 'method' given; valid methods are lora,");
  }

  @Test
  void structuralErrorsSayWhatIsExpected() {
    assertThatThrownBy(() -> Recipe.parse("", "e.yaml")).hasMessageContaining("Recipe e.yaml is empty");
    assertThatThrownBy(() -> Recipe.parse("passes: []", "e.yaml"))
        .hasMessageContaining("'passes' must be a non-empty list");
    assertThatThrownBy(() -> Recipe.parse("pases: [{method: lora}]", "e.yaml"))
        .hasMessage("Recipe e.yaml: unknown key 'pases' at the top level; valid keys are description, passes, stages, unfreeze.");
    assertThatThrownBy(() -> Recipe.parse("passes: [lora]", "e.yaml"))
        .hasMessageContaining("passes[0] must be a map with a 'method' key, got 'lora'");
    assertThatThrownBy(() -> Recipe.parse("passes:\n  - method: lora\n    rank: 4\n    rank: 8\n", "e.yaml"))
        .hasMessageContaining("Recipe e.yaml is not valid YAML or JSON")
        .hasMessageContaining("duplicate key rank");
    assertThatThrownBy(() -> Recipe.parse("passes: [{method: lora, rank: 4", "e.yaml"))
        .hasMessageContaining("is not valid YAML or JSON");
  }

  @Test
  void valuesAreTypeCheckedAndRangeChecked() {
    assertThatThrownBy(() -> Recipe.parse("passes: [{method: lora, rank: eight}]", "v.yaml"))
        .hasMessage("Recipe v.yaml, passes[0] (lora): option 'rank' must be an integer, got 'eight'");
    assertThatThrownBy(() -> Recipe.parse("passes: [{method: lora, rank: 0}]", "v.yaml"))
        .hasMessage("Recipe v.yaml, passes[0] (lora): LoRA rank must be positive, got 0");
    assertThatThrownBy(() -> Recipe.parse("passes: [{method: lora, init: xavier}]", "v.yaml"))
        .hasMessage("Recipe v.yaml, passes[0] (lora): option 'init' is 'xavier'; choose one of kaiming-uniform, gaussian, pissa, olora");
    assertThatThrownBy(() -> Recipe.parse("passes: [{method: conv-lora, init: pissa}]", "v.yaml"))
        .hasMessageStartingWith("Recipe v.yaml, passes[0] (conv-lora): conv-lora: init 'pissa' starts A and B")
        .hasMessageContaining("use init: kaiming-uniform or gaussian");
    assertThatThrownBy(() -> Recipe.parse("passes: [{method: lora, layers: [5, 2]}]", "v.yaml"))
        .hasMessageContaining("option 'layers' must be a layer, [from, to] or \"from-to\"");
    assertThatThrownBy(() -> Recipe.parse("passes: [{method: lora, targets: 'layer.{a'}]", "v.yaml"))
        .hasMessageContaining("option 'targets': Glob 'layer.{a' has an unmatched '{'");
    assertThatThrownBy(() -> Recipe.parse("passes: [{method: classification-head}]", "v.yaml"))
        .hasMessageContaining("option 'classes' is required");
    assertThatThrownBy(() -> Recipe.parse("passes: [{method: classification-head, classes: 2, targets: x}]", "v.yaml"))
        .hasMessageContaining("unknown option 'targets'; valid options for classification-head are method, classes,");
    assertThatThrownBy(() -> Recipe.parse("passes: [{method: lora, dropout: }]", "v.yaml"))
        .hasMessageContaining("option 'dropout' has no value");
  }

  @Test
  void adapterPrefixPromptAndUTuningOptions() {
    ParallelAdapterPass parallel =
        (ParallelAdapterPass) AppliedPass.unwrap(Recipe.parse("passes: [{method: parallel-adapter, size: 8, scale: 4, activation: gelu}]", "a.yaml")
            .passes().get(0));
    assertThat(parallel.config())
        .isEqualTo(BottleneckAdapter.Config.defaults().withSize(8).withScale(4).withActivation(BottleneckAdapter.Activation.GELU));
    assertThatThrownBy(() -> Recipe.parse("passes: [{method: houlsby, scale: 2}]", "a.yaml"))
        .hasMessageContaining("unknown option 'scale'; valid options for houlsby are method, targets, layers, size,");
    assertThatThrownBy(() -> Recipe.parse("passes: [{method: pfeiffer, size: 8, reduction-factor: 4}]", "a.yaml"))
        .hasMessage("Recipe a.yaml, passes[0] (pfeiffer): give the bottleneck as 'size' or as 'reduction-factor', not both");
    PrefixTuningPass prefix =
        (PrefixTuningPass) AppliedPass.unwrap(Recipe.parse("passes: [{method: prefix, length: 4, reparam-hidden: 16}]", "p.yaml").passes().get(0));
    assertThat(prefix.config()).isEqualTo(PrefixTuningPass.Config.defaults().withLength(4).withReparameterization(16));
    PromptTuningPass prompt =
        (PromptTuningPass) AppliedPass.unwrap(Recipe.parse("passes: [{method: prompt, length: 5, keep-prompt-positions: true}]", "p.yaml").passes().get(0));
    assertThat(prompt.config()).isEqualTo(PromptTuningPass.Config.defaults().withLength(5).withKeepPromptPositions(true));

    UTuningPass u =
        (UTuningPass) AppliedPass.unwrap(Recipe.parse("passes: [{method: u-tuning, tuner: prompt, targets: layer.0, length: 3}]", "u.yaml").passes().get(0));
    assertThat(u.config().op()).isEqualTo(UTuningPass.Op.BLOCK);
    assertThat(u.config().prompt().length()).isEqualTo(3);
    assertThatThrownBy(() -> Recipe.parse("passes: [{method: u-tuning, tuner: bottleneck, length: 3}]", "u.yaml"))
        .hasMessageContaining("option 'length' does not apply to tuner bottleneck");
    assertThatThrownBy(() -> Recipe.parse("passes: [{method: u-tuning, tuner: prefix, op: ffn}]", "u.yaml"))
        .hasMessageStartingWith("Recipe u.yaml, passes[0] (u-tuning): U-Tuning's prefix tuner is a parallel branch of attention");
  }

  /** Targets that match nothing fail when the pass meets the model, listing what exists. */
  @Test
  void targetThatMatchesNothingListsTheModules() {
    Recipe r = Recipe.parse("passes: [{method: lora, targets: 'layer.*.attention.qkv'}]", "t.yaml");
    Model m = TinyModels.bertLike(TinyModels.Flavour.FUSED_OPSET17);
    assertThatThrownBy(() -> r.manager().run(m))
        .hasMessageContaining("lora: target 'layer.*.attention.qkv' matches no linear module")
        .hasMessageContaining("layer.0.attention.query");
  }

  @Test
  void loadNamesTheFileAndRefusesMissingOnes(@TempDir Path dir) throws Exception {
    Path f = dir.resolve("mine.yaml");
    Files.writeString(f, "passes:\n  - method: layernorm-affine\n    colour: red\n");
    assertThatThrownBy(() -> Recipe.load(f)).hasMessageStartingWith("Recipe mine.yaml, passes[0] (layernorm-affine)");
    assertThatThrownBy(() -> Recipe.load(dir.resolve("nope.yaml"))).hasMessageContaining("does not exist");
  }

  @Test
  void aRegistryEntryIsAllANewMethodNeeds() {
    PassFactory norms =
        PassFactory.targeted("norms of the attention blocks", "layer.*.attention.norm", List.of(), o -> new LayerNormAffinePass(o.targets()));
    Map<String, PassFactory> registry = Map.of("attention-norms", norms);
    GraphPass p = Recipe.parse("passes: [{method: attention-norms, layers: 1}]", "c.yaml", registry).passes().get(0);
    assertThat(p.dryRun(TinyModels.bertLike(TinyModels.Flavour.FUSED_OPSET17)).changes())
        .containsExactly("layernorm-affine layer.1.attention.norm");
    assertThatThrownBy(() -> Recipe.parse("passes: [{method: lora}]", "c.yaml", registry))
        .hasMessageContaining("unknown method 'lora'; valid methods are attention-norms.");

    // A factory that reads an option it does not declare is a bug, caught on first use.
    PassFactory sloppy = PassFactory.untargeted("", List.of(), o -> {
      o.integer("level", 1);
      return p;
    });
    assertThatThrownBy(() -> Recipe.parse("passes: [{method: sloppy}]", "c.yaml", Map.of("sloppy", sloppy)))
        .isInstanceOf(IllegalStateException.class)
        .hasMessageContaining("reads option 'level', which it does not declare");
  }
}
