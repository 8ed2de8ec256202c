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
  void textShowsAModuleTableAndTheTrainableLine() {
    CliRun run = CliRun.of("inspect");
    assertThat(run.exit()).as(run.err()).isZero();
    assertThat(run.out()).contains("trainable      none (not rewritten)");
    assertThat(run.out()).containsPattern("modules \\(\\d+\\)");
    assertThat(run.out()).containsPattern("(?m)^  layer\\.3\\.attention\\.query +linear +3 +2  weight \\[384x384\\], bias \\[384\\]$");
  }
}
