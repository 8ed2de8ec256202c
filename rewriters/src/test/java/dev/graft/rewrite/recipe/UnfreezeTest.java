package dev.graft.rewrite.recipe;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.graft.fixtures.TinyModels;
import dev.graft.ir.Model;
import dev.graft.rewrite.TrainableRegistry;
import java.util.List;
import org.junit.jupiter.api.Test;

class UnfreezeTest {
  private static final String RECIPE =
      """
      unfreeze: {layers-per-epoch: 1}
      passes:
        - {method: layernorm-affine, targets: "**"}
        - {method: classification-head, classes: 2}
      """;

  @Test
  void layersUnfreezeTopDownOneEpochAtATimeWithTheHeadFromTheStartAndTheEmbeddingsLast() {
    Recipe r = Recipe.parse(RECIPE, "u.yaml");
    Unfreeze u = r.unfreeze().orElseThrow();
    Model m = TinyModels.bertLike(TinyModels.Flavour.FUSED_OPSET17); // 2 layers
    r.manager().run(m);
    List<TrainableRegistry.Entry> entries = TrainableRegistry.read(m);

    List<String> epoch1 = u.trainables(1, entries);
    List<String> epoch2 = u.trainables(2, entries);
    List<String> epoch3 = u.trainables(3, entries);
    assertThat(modules(entries, epoch1)).allMatch(s -> s.startsWith("layer.1.") || s.equals("head")).anyMatch(s -> s.equals("head"));
    assertThat(modules(entries, epoch2)).anyMatch(s -> s.startsWith("layer.0.")).noneMatch(s -> s.startsWith("embeddings"));
    assertThat(epoch3).hasSize(entries.size());
    assertThat(epoch1.size()).isLessThan(epoch2.size());
    assertThat(epoch2.size()).isLessThan(epoch3.size());

    assertThat(Recipe.parse("unfreeze: true\npasses: [{method: bitfit}]", "t.yaml").unfreeze()).contains(new Unfreeze(1));
    assertThat(Recipe.parse("passes: [{method: bitfit}]", "t.yaml").unfreeze()).isEmpty();
    assertThatThrownBy(() -> Recipe.parse("unfreeze: {layers-per-epoch: 0}\npasses: [{method: bitfit}]", "b.yaml"))
        .hasMessageContaining("Recipe b.yaml: 'unfreeze.layers-per-epoch' must be an integer of 1 or more");
    assertThatThrownBy(() -> Recipe.parse("unfreeze: {every: 2}\npasses: [{method: bitfit}]", "b.yaml"))
        .hasMessageContaining("unknown key 'every' in 'unfreeze'");
  }

  private static List<String> modules(List<TrainableRegistry.Entry> entries, List<String> names) {
    return entries.stream().filter(e -> names.contains(e.initializer())).map(TrainableRegistry.Entry::module).toList();
  }
}
