package dev.graft.tools.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.fixtures.PretrainedModels;
import dev.graft.rewrite.method.Methods;
import dev.graft.rewrite.method.PeftMethod;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class MethodsCommandTest {
  @Test
  void methodsAndRewriteHelpListEveryRegisteredMethodWithItsOptions() {
    CliRun methods = CliRun.of("methods");
    CliRun help = CliRun.of("rewrite", "--help");
    assertThat(methods.exit()).isZero();
    for (PeftMethod m : Methods.STANDARD) {
      assertThat(methods.out()).contains(m.name() + ": " + m.description());
      assertThat(help.out()).contains(m.name() + ": ");
    }
    assertThat(methods.out()).contains("dora: DoRA").contains("options: targets, layers, rank, alpha, seed");
    assertThat(help.out()).contains("full: full fine-tuning");

    Map<?, ?> json = (Map<?, ?>) MiniJson.parse(CliRun.of("methods", "lora", "--json").out());
    assertThat(List.copyOf(json.keySet())).isEqualTo(List.of("lora"));
    assertThat(((Map<?, ?>) json.get("lora")).get("peft")).isEqualTo("LORA");

    CliRun unknown = CliRun.of("methods", "qlora");
    assertThat(unknown.exit()).isEqualTo(1);
    assertThat(unknown.err()).contains("No method 'qlora'").contains("lora, layernorm-affine");
  }

  @Test
  void inspectShowsWhatTheRewriteApplied(@TempDir Path dir) {
    Path out = dir.resolve("dora.onnx");
    CliRun rewrite =
        CliRun.of("rewrite", PretrainedModels.miniLm().toString(), out.toString(), "--lora", "--rank", "4", "--layers", "2");
    assertThat(rewrite.exit()).as(rewrite.err()).isZero();
    Map<?, ?> json = (Map<?, ?>) MiniJson.parse(CliRun.of("inspect", out.toString(), "--json").out());
    List<?> applied = (List<?>) json.get("appliedMethods");
    assertThat(applied).hasSize(1);
    Map<?, ?> lora = (Map<?, ?>) applied.get(0);
    assertThat(lora.get("method")).isEqualTo("lora");
    assertThat(lora.get("options")).isEqualTo(Map.of("rank", 4L, "layers", 2L));
    assertThat(lora.get("modules")).isEqualTo(List.of("layer.2.attention.query", "layer.2.attention.value"));
    assertThat(CliRun.of("inspect", out.toString()).out()).contains("applied        lora {layers=2, rank=4} on 2 modules");
  }
}
