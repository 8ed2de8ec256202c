package dev.graft.rewrite;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.common.collect.ImmutableMultiset;
import dev.graft.fixtures.TinyModels;
import dev.graft.ir.Model;
import dev.graft.ir.tensor.DenseTensor;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class FrameworkTest {
  @Test
  void globsMatchWholeNamesSegmentBySegment() {
    assertThat("layer.3.attention.query").matches(Targets.globToRegex("layer.*.attention.{query,value}"));
    assertThat("layer.3.attention.key").doesNotMatch(Targets.globToRegex("layer.*.attention.{query,value}"));
    assertThat("layer.3.attention.query").doesNotMatch(Targets.globToRegex("layer.*"));
    assertThat("layer.3.attention.query").matches(Targets.globToRegex("layer.**"));
    assertThat("layer.12.ffn.up").matches(Targets.globToRegex("layer.??.ffn.up"));
    assertThatThrownBy(() -> Targets.glob("layer.{a,b")).hasMessageContaining("unmatched '{'");
  }

  @Test
  void jsonRoundTrip() {
    Object v = Json.parse("{\"a\": [1, 2.5, \"x\\\"y\\u0041\", true, null], \"b\": {}}");
    assertThat(v).isEqualTo(Map.of("a", java.util.Arrays.asList(1L, 2.5, "x\"yA", true, null), "b", Map.of()));
    assertThat(Json.parse(Json.write(v))).isEqualTo(v);
    assertThatThrownBy(() -> Json.parse("[1, 2")).hasMessageContaining("offset 5");
  }

  @Test
  void registryWritesAndReads() {
    Model m = TinyModels.mlp();
    TrainableRegistry.write(m, List.of(new TrainableRegistry.Entry("a:b", "lora", "fc1", "A")));
    TrainableRegistry.add(m, List.of(new TrainableRegistry.Entry("c", "lora", "fc1", "B")));
    assertThat(TrainableRegistry.read(m)).extracting(TrainableRegistry.Entry::initializer).containsExactly("a:b", "c");
    assertThat(TrainableRegistry.modulesOf(m, "lora")).containsExactly("fc1");
    TrainableRegistry.write(m, List.of());
    assertThat(m.metadata()).doesNotContainKey(TrainableRegistry.KEY);
  }

  /** A pass that claims a change it did not make is caught by the manager. */
  @Test
  void passManagerCatchesAPassThatLies() {
    GraphPass liar =
        new GraphPass() {
          @Override
          public String name() {
            return "liar";
          }

          @Override
          public PassResult run(Model model) {
            return new PassResult("liar", ImmutableMultiset.of("something"), 0);
          }

          @Override
          public PassResult dryRun(Model model) {
            return run(model);
          }
        };
    assertThatThrownBy(() -> new PassManager(List.of(liar)).run(TinyModels.mlp()))
        .hasMessageContaining("Pass 'liar' reported 1 changes but did not change the model");
    GraphPass silent =
        new GraphPass() {
          @Override
          public String name() {
            return "silent";
          }

          @Override
          public PassResult run(Model model) {
            model.graph().addInitializer("x", DenseTensor.scalar("x", 1f));
            return new PassResult("silent", ImmutableMultiset.of(), 0);
          }

          @Override
          public PassResult dryRun(Model model) {
            return run(model);
          }
        };
    assertThatThrownBy(() -> new PassManager(List.of(silent)).run(TinyModels.mlp()))
        .hasMessageContaining("reported no change but changed the model");
  }
}
