package dev.graft.tools.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.fixtures.PretrainedModels;
import dev.graft.ir.Model;
import dev.graft.ir.analysis.OpCensus;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.ir.io.ModelIO;
import dev.graft.rewrite.PassManager;
import dev.graft.rewrite.recipe.Recipe;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code graft export} on a LoRA + LayerNorm-affine + head MiniLM with random "trained" values. */
class ExportCommandTest {
  @TempDir static Path shared;
  private static Path miniLm;
  private static Path tuned;

  @BeforeAll
  static void tune() {
    miniLm = PretrainedModels.miniLm();
    // Through a recipe, as graft rewrite and graft train do, so the model records what was applied
    // (the adapter-only export replays that record on the base).
    tuned =
        TrainedMiniLm.tune(
            TrainedMiniLm.base(),
            Recipe.parse(
                    """
                    passes:
                      - {method: lora, targets: ["layer.*.attention.query", "layer.*.attention.value"], rank: 8, alpha: 16}
                      - {method: layernorm-affine, targets: "**"}
                      - {method: classification-head, classes: 2, pooling: mean}
                    """,
                    "export-test.yaml")
                .passes(),
            1,
            shared.resolve("tuned.onnx"));
  }

  @Test
  void mergeVerifiesPrintsTheDifferenceAndTheCensusChangeThenWrites(@TempDir Path dir) {
    Path out = dir.resolve("merged.onnx");

    CliRun run = CliRun.of("export", tuned.toString(), out.toString());

    assertThat(run.err()).isEmpty();
    assertThat(run.exit()).isZero();
    assertThat(run.out())
        .contains("Folded: folded 25 modules")
        .contains("Verified: max |export - tuned| = ")
        .contains("last_hidden_state: max |diff| ")
        .contains("logits: max |diff| ")
        .contains("Op census change:")
        .contains("MatMul ")
        .contains("Wrote " + out);
    Model merged = ModelIO.load(out);
    Model base = ModelIO.load(miniLm);
    // Base census plus the head's nodes: only ops the head uses may have grown.
    var baseCensus = OpCensus.of(base.graph());
    OpCensus.of(merged.graph()).forEach((op, n) -> {
      if (List.of("MatMul", "Add", "Mul", "Cast", "Unsqueeze", "ReduceSum", "Max", "Div").contains(op)) {
        assertThat(n - baseCensus.getOrDefault(op, 0)).as(op).isBetween(0, 2);
      } else {
        assertThat(n).as(op).isEqualTo(baseCensus.get(op));
      }
    });
  }

  @Test
  void adapterOnlyWritesTheAdapterFilesForTheGivenBase(@TempDir Path dir) {
    Path out = dir.resolve("adapter");

    CliRun run = CliRun.of("export", tuned.toString(), out.toString(), "--adapter-only", "--base", miniLm.toString());

    assertThat(run.err()).isEmpty();
    assertThat(run.exit()).isZero();
    assertThat(run.out()).contains("Verified: applied to the base, max |export - tuned|").contains("ORT LoRA adapter");
    assertThat(out.resolve("adapter.safetensors")).exists();
    assertThat(out.resolve("adapter_config.json")).exists();
    assertThat(out.resolve("adapter.onnx_adapter")).exists();
    assertThat(out.resolve("base_with_lora_inputs.onnx")).exists();
  }

  @Test
  void optionMistakesAreUsageErrorsAndWriteNothing(@TempDir Path dir) throws Exception {
    Path out = dir.resolve("x.onnx");
    CliRun noBase = CliRun.of("export", tuned.toString(), out.toString(), "--adapter-only");
    assertThat(noBase.exit()).isEqualTo(2);
    assertThat(noBase.err()).contains("--adapter-only needs --base BASE");

    CliRun both = CliRun.of("export", tuned.toString(), out.toString(), "--merge", "--adapter-only");
    assertThat(both.exit()).isEqualTo(2);
    assertThat(both.err()).contains("exclude each other");

    CliRun tooNew = CliRun.of("export", tuned.toString(), out.toString(), "--ir-version", "99");
    assertThat(tooNew.exit()).isEqualTo(1);
    assertThat(tooNew.err()).contains("IR version 99 is newer than the ONNX Runtime in use");
    try (var files = Files.list(dir)) {
      assertThat(files).isEmpty();
    }
  }

  @Test
  void verifyChoosesTheCheckAndRefusesWhatItCannotDo(@TempDir Path dir) throws Exception {
    // The tuned model folds LayerNorm-affine as well as LoRA: the probe cannot check those folds.
    CliRun probe = CliRun.of("export", tuned.toString(), dir.resolve("p.onnx").toString(), "--verify", "probe");
    assertThat(probe.exit()).isEqualTo(1);
    assertThat(probe.err()).contains("--verify probe checks merged linear weights").contains("use --verify full");

    CliRun bad = CliRun.of("export", tuned.toString(), dir.resolve("b.onnx").toString(), "--verify", "fast");
    assertThat(bad.exit()).isEqualTo(2);
    assertThat(bad.err()).contains("--verify takes auto, full, probe or none, got 'fast'");
    CliRun half = CliRun.of("export", tuned.toString(), dir.resolve("h.onnx").toString(), "--verify", "probe", "--fp16");
    assertThat(half.exit()).isEqualTo(2);
    assertThat(half.err()).contains("--fp16 changes them after the fold");
    // The adapter's probe checks linear branches only; this adapter also has LayerNorm-affine and a head.
    CliRun adapter =
        CliRun.of("export", tuned.toString(), dir.resolve("a").toString(), "--adapter-only", "--base", miniLm.toString(),
            "--verify", "probe");
    assertThat(adapter.exit()).isEqualTo(1);
    assertThat(adapter.err()).contains("--verify probe checks adapters whose trained tensors all sit in linear branches")
        .contains("use --verify full");
    try (var files = Files.list(dir)) {
      assertThat(files).isEmpty();
    }

    // LoRA alone, probed: one line says what was checked; the export is written.
    Model lora = WorkingModels.load(miniLm);
    new PassManager(
            Recipe.parse("passes: [{method: lora, targets: \"layer.0.attention.query\", rank: 4}]", "probe.yaml").passes())
        .run(lora);
    Path loraFile = dir.resolve("lora.onnx");
    ModelIO.save(lora, loraFile);
    Path out = dir.resolve("merged.onnx");
    CliRun probed = CliRun.of("export", loraFile.toString(), out.toString(), "--verify", "probe");
    assertThat(probed.exit()).as(probed.err()).isZero();
    assertThat(probed.out()).contains("Verified: probed 1 merged weight on 4 random rows").doesNotContain("max |diff|");
    assertThat(out).exists();

    // The same LoRA as an adapter, probed: the graph check and each module, for both adapter files.
    Path adapterDir = dir.resolve("adapter");
    CliRun adapterProbed =
        CliRun.of("export", loraFile.toString(), adapterDir.toString(), "--adapter-only", "--base", miniLm.toString(),
            "--verify", "probe");
    assertThat(adapterProbed.exit()).as(adapterProbed.err()).isZero();
    assertThat(adapterProbed.out())
        .contains("Verified: applied to the base, graph identical to the tuned one; probed 1 module on 4 random rows")
        .contains("Verified: ORT LoRA adapter on base_with_lora_inputs.onnx, graph identical to the tuned one; probed 1 module");
    assertThat(adapterDir.resolve("adapter.onnx_adapter")).exists();
  }
}
