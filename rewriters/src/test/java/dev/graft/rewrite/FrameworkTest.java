package dev.graft.rewrite;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.common.collect.ImmutableMultiset;
import dev.graft.fixtures.TinyModels;
import dev.graft.ir.Model;
import dev.graft.ir.tensor.DenseTensor;
import java.util.List;
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

  /** The metadata format is the documented one, byte for byte, and reads back from hand-written JSON. */
  @Test
  void registryMetadataFormat() {
    Model m = TinyModels.mlp();
    TrainableRegistry.write(
        m,
        List.of(
            new TrainableRegistry.Entry("fc1.lora_A", "lora", "fc1", "A"),
            new TrainableRegistry.Entry("w<\"q\">", "bitfit", "fc2", "")));
    assertThat(m.metadata().get(TrainableRegistry.KEY))
        .isEqualTo(
            "[{\"initializer\":\"fc1.lora_A\",\"method\":\"lora\",\"module\":\"fc1\",\"role\":\"A\"},"
                + "{\"initializer\":\"w<\\\"q\\\">\",\"method\":\"bitfit\",\"module\":\"fc2\"}]");
    m.putMetadata(
        TrainableRegistry.KEY,
        " [ {\"module\": \"fc2\", \"initializer\": \"b\\u0041\", \"method\": \"head\", \"role\": null} ] ");
    assertThat(TrainableRegistry.read(m)).containsExactly(new TrainableRegistry.Entry("bA", "head", "fc2", ""));
    m.putMetadata(TrainableRegistry.KEY, "[{\"initializer\": \"x\", \"method\": 3, \"module\": \"m\"}]");
    assertThatThrownBy(() -> TrainableRegistry.read(m)).hasMessageContaining("lacks the string field 'method'");
    m.putMetadata(TrainableRegistry.KEY, "{\"initializer\": \"x\"}");
    assertThatThrownBy(() -> TrainableRegistry.read(m)).hasMessageContaining("must be a JSON array");
    m.putMetadata(TrainableRegistry.KEY, "[{\"initializer\": ");
    assertThatThrownBy(() -> TrainableRegistry.read(m)).hasMessageContaining("is not valid JSON");
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
