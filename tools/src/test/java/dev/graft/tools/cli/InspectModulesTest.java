package dev.graft.tools.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.fixtures.PretrainedModels;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/** {@code graft inspect} lists the modules discovery finds and the trainable parameter count. */
class InspectModulesTest {

  @Test
  void jsonListsMiniLmModulesWithKindLayerShapesAndNodes() {
    CliRun run = CliRun.of("inspect", PretrainedModels.miniLm().toString(), "--json");
    assertThat(run.exit()).as(run.err()).isZero();
    Map<?, ?> json = (Map<?, ?>) MiniJson.parse(run.out());
    assertThat(json.get("trainableParameters")).isEqualTo(0L);
    List<?> modules = (List<?>) json.get("modules");
    Map<String, Map<?, ?>> byName =
        modules.stream().map(m -> (Map<?, ?>) m).collect(Collectors.toMap(m -> (String) m.get("name"), m -> m));
    for (int layer = 0; layer < 6; layer++) {
      for (String part : List.of("attention", "attention.query", "attention.key", "attention.value", "attention.output",
          "attention.norm", "ffn", "ffn.up", "ffn.down", "ffn.norm")) {
        Map<?, ?> m = byName.get("layer." + layer + "." + part);
        assertThat(m).as("layer.%s.%s", layer, part).isNotNull();
        assertThat(m.get("layer")).isEqualTo((long) layer);
      }
    }
    Map<?, ?> query = byName.get("layer.3.attention.query");
    assertThat(List.<Object>copyOf(query.keySet())).containsExactly("name", "kind", "layer", "shapes", "nodes");
    assertThat(query.get("kind")).isEqualTo("linear");
    assertThat(query.get("shapes")).isEqualTo(Map.of("weight", List.of(384L, 384L), "bias", List.of(384L)));
    assertThat((List<?>) query.get("nodes")).hasSize(2).allMatch(n -> n.toString().contains("layer.3/attention/self/query"));
    assertThat(byName.get("layer.0.ffn.up").get("shapes")).isEqualTo(Map.of("weight", List.of(384L, 1536L), "bias", List.of(1536L)));
    assertThat(byName.get("layer.1.attention.norm").get("kind")).isEqualTo("norm");
    assertThat(byName.get("layer.1.attention.norm").get("shapes")).isEqualTo(Map.of("gamma", List.of(384L), "beta", List.of(384L)));
    assertThat(byName.get("embeddings.word").get("shapes")).isEqualTo(Map.of("table", List.of(30522L, 384L)));
    assertThat(byName.get("embeddings.word").get("layer")).isNull();
  }

  @Test
  void anInt8ModelListsTheModulesOfItsFloatFormAsRecipesSeeThem() {
    CliRun int8 = CliRun.of("inspect", PretrainedModels.miniLmQuantized().toString(), "--json");
    assertThat(int8.exit()).as(int8.err()).isZero();
    Map<?, ?> json = (Map<?, ?>) MiniJson.parse(int8.out());
    // The file's own figures stay the file's: its int8 linears.
    assertThat(((Map<?, ?>) json.get("opCensus")).get("MatMulInteger")).isEqualTo(36L);
    assertThat((String) json.get("modulesNote")).contains("36 MatMulInteger linears").contains("3 embedding Gathers");
    // The modules are those of the float model it was quantised from, role by role and shape by shape.
    CliRun fp32 = CliRun.of("inspect", PretrainedModels.miniLm().toString(), "--json");
    Map<?, ?> floatJson = (Map<?, ?>) MiniJson.parse(fp32.out());
    assertThat(floatJson.containsKey("modulesNote")).isFalse();
    assertThat(withoutNodes(json.get("modules"))).isEqualTo(withoutNodes(floatJson.get("modules")));

    CliRun text = CliRun.of("inspect", PretrainedModels.miniLmQuantized().toString());
    assertThat(text.out()).containsPattern("modules \\(\\d+\\), as recipes see them: graft rewrite and train dequantise")
        .containsPattern("(?m)^  layer\\.3\\.attention\\.query +linear +3 +2  weight \\[384x384\\], bias \\[384\\]$");
  }

  /** Name, kind, layer and shapes of each module (node names differ between the two files). */
  private static List<List<Object>> withoutNodes(Object modules) {
    return ((List<?>) modules).stream().map(m -> (Map<?, ?>) m)
        .map(m -> List.<Object>of(m.get("name"), m.get("kind"), String.valueOf(m.get("layer")), m.get("shapes")))
        .toList();
  }

  @Test
  void textShowsAModuleTableAndTheTrainableLine() {
    CliRun run = CliRun.of("inspect");
    assertThat(run.exit()).as(run.err()).isZero();
    assertThat(run.out()).contains("trainable      none (not rewritten)");
    assertThat(run.out()).containsPattern("modules \\(\\d+\\)");
    assertThat(run.out()).containsPattern("(?m)^  layer\\.3\\.attention\\.query +linear +3 +2  weight \\[384x384\\], bias \\[384\\]$");
  }
}
