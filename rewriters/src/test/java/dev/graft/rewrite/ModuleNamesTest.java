package dev.graft.rewrite;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.graft.fixtures.PretrainedModels;
import dev.graft.ir.Model;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.rewrite.peft.LoraPass;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

class ModuleNamesTest {
  private static List<String> layers(int from, int to, String... parts) {
    List<String> out = new ArrayList<>();
    for (int l = from; l <= to; l++) for (String p : parts) out.add("layer." + l + "." + p);
    return out;
  }

  @Test
  void aFewNamesAreGivenWhole() {
    List<String> names = layers(0, 1, "attention.query", "attention.key", "ffn.up");
    assertThat(ModuleNames.describe(names)).isEqualTo(String.join(", ", names));
  }

  @Test
  void aLongListFoldsIntoTheGlobsARecipeWritesWithTheLayersOnce() {
    List<String> names = new ArrayList<>(List.of("embeddings.word"));
    names.addAll(layers(0, 11, "attention.query", "ffn.down"));
    names.add("pooler.dense");
    assertThat(ModuleNames.describe(names))
        .isEqualTo("26 modules, globs in layers 0..11: embeddings.word, layer.*.attention.query, layer.*.ffn.down, pooler.dense");
  }

  @Test
  void globsOverDifferentLayersSayTheirOwnAndSeveralNumbersCountTheirModules() {
    List<String> names = new ArrayList<>(layers(0, 11, "mlp.up"));
    names.addAll(layers(0, 5, "mlp.gate"));
    names.addAll(List.of("layer.1.x", "layer.4.x", "layer.5.x"));
    IntStream.range(0, 3).forEach(s -> IntStream.range(0, 2).forEach(b -> names.add("stage." + s + ".block." + b + ".conv.pw")));
    assertThat(ModuleNames.describe(names))
        .isEqualTo("27 modules: layer.*.mlp.up (in layers 0..11), layer.*.mlp.gate (in layers 0..5),"
            + " layer.*.x (in layers 1, 4, 5), stage.*.block.*.conv.pw (6 modules)");
  }

  @Test
  void nothingToFoldIsGivenWhole() {
    List<String> names = IntStream.range(0, 20).mapToObj(i -> "conv" + i).toList();
    assertThat(ModuleNames.describe(names)).isEqualTo(String.join(", ", names));
  }

  @Test
  void aTargetThatMatchesNothingOnMiniLmListsItsLinearsByGlob() {
    Model m = WorkingModels.load(PretrainedModels.miniLm());
    assertThatThrownBy(() -> new LoraPass(Targets.glob("layer.*.attention.q"), LoraPass.Config.defaults()).run(m))
        .hasMessageContaining("The linear modules are: 36 modules, globs in layers 0..5: layer.*.attention.query,"
            + " layer.*.attention.key, layer.*.attention.value, layer.*.attention.output, layer.*.ffn.up,"
            + " layer.*.ffn.down.");
  }
}
