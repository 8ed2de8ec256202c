package dev.graft.tools.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.fixtures.TinyDecoders;
import dev.graft.fixtures.TinyModels;
import dev.graft.ir.Model;
import dev.graft.ir.io.ModelIO;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The decoder paths of the CLI on bad input and over 4-bit weights: each refusal is one line on
 * stderr with exit 1 and nothing written; {@code graft export --keep-unmerged} writes a 4-bit
 * model whose LoRA stays beside the MatMulNBits weights.
 */
class DecoderCommandTest {
  private static final String LORA = "passes: [{method: lora, targets: ['layer.*.attention.*', 'layer.*.mlp.*'], rank: 4}]\n";

  @TempDir Path dir;

  @Test
  void mergingOntoInt4WeightsIsRefusedAndKeepUnmergedWritesTheModel() throws Exception {
    Path base = dir.resolve("int4.onnx");
    ModelIO.save(TinyDecoders.genAi(TinyDecoders.Config.small().withPast(true), true), base);
    Path recipe = Files.writeString(dir.resolve("lora.yaml"), LORA);
    Path tuned = dir.resolve("tuned.onnx");
    assertThat(CliRun.of("rewrite", base.toString(), tuned.toString(), "--recipe", recipe.toString()).exit()).isZero();

    Path merged = dir.resolve("merged.onnx");
    CliRun refused = CliRun.of("export", tuned.toString(), merged.toString());
    assertOneLineFailure(refused);
    assertThat(refused.err())
        .startsWith("graft export: lora module 'layer.0.attention.query' sits on 4-bit weights (MatMulNBits '")
        .contains("Export with --keep-unmerged").contains("or --adapter-only --base BASE");
    assertThat(merged).doesNotExist();

    CliRun kept = CliRun.of("export", tuned.toString(), merged.toString(), "--keep-unmerged");
    assertThat(kept.exit()).as(kept.err()).isZero();
    assertThat(kept.out())
        .contains("Folded: folded 0 modules, kept 14 as nodes")
        .contains("  kept as nodes: lora layer.1.mlp.down, unmerged over 4-bit MatMulNBits (4 nodes)")
        .contains("Verified: ");
    assertThat(ModelIO.load(merged).graph().nodes().stream().filter(n -> n.opType().equals("MatMulNBits"))).hasSize(15);

    CliRun wrong = CliRun.of("export", tuned.toString(), dir.resolve("a").toString(), "--adapter-only", "--base", base.toString(), "--keep-unmerged");
    assertThat(wrong.exit()).isEqualTo(2);
    assertThat(wrong.err()).contains("--keep-unmerged apply to merged exports only");
  }

  @Test
  void badCausalLmInputGetsOneLineEach() throws Exception {
    Path decoder = dir.resolve("decoder.onnx");
    ModelIO.save(TinyDecoders.standard(TinyDecoders.Config.small()), decoder);
    Path recipe = Files.writeString(dir.resolve("lora.yaml"), LORA);

    Path missing = Files.writeString(dir.resolve("m.jsonl"), "{\"prompt\": \"Q: a\", \"completion\": \" b\"}\n{\"prompt\": \"Q: c\"}\n");
    CliRun noCompletion = train(decoder, recipe, missing, "64", "run1");
    assertOneLineFailure(noCompletion);
    assertThat(noCompletion.err()).isEqualTo("graft train: " + missing.getFileName() + " line 2: no \"completion\" field. Every line needs"
        + " {\"text\": ...} or both {\"prompt\": ..., \"completion\": ...}." + System.lineSeparator());

    Path shortText = Files.writeString(dir.resolve("s.txt"), "Too short for a block.");
    CliRun tooShort = train(decoder, recipe, shortText, "64", "run2");
    assertOneLineFailure(tooShort);
    assertThat(tooShort.err()).isEqualTo("graft train: " + shortText.getFileName() + ": 23 tokens (bytes), fewer than one block of 65"
        + " (--max-length 64 + 1 for the shifted labels). Use a smaller --max-length or more text." + System.lineSeparator());
    CliRun evalShort = CliRun.of("eval", decoder.toString(), "--task", "causal-lm", "--data", shortText.toString(), "--max-length", "64");
    assertOneLineFailure(evalShort);
    assertThat(evalShort.err()).contains("Use a smaller --max-length or more text.");

    // An encoder whose output is called 'logits' has the right output but no decoder block.
    Model encoder = TinyModels.bertLike(TinyModels.Flavour.FUSED_OPSET17);
    encoder.graph().rename(encoder.graph().valueOrThrow("last_hidden_state"), "logits");
    Path notDecoder = dir.resolve("encoder.onnx");
    ModelIO.save(encoder, notDecoder);
    Path text = Files.writeString(dir.resolve("t.txt"), "Some text that is long enough for a block of sixteen bytes. ".repeat(10));
    CliRun noBlock = train(notDecoder, recipe, text, "16", "run3");
    assertOneLineFailure(noBlock);
    assertThat(noBlock.err()).startsWith("graft train: causal-lm found no decoder block in this model");
    assertThat(dir.resolve("run3/tuned.onnx")).doesNotExist();
  }

  private CliRun train(Path model, Path recipe, Path data, String maxLength, String out) {
    return CliRun.of("train", model.toString(), "--recipe", recipe.toString(), "--task", "causal-lm", "--train", data.toString(),
        "--max-length", maxLength, "--batch-size", "4", "--epochs", "1", "--threads", "1", "--out", dir.resolve(out).toString());
  }

  private static void assertOneLineFailure(CliRun run) {
    assertThat(run.exit()).as("exit status; stderr: %s", run.err()).isEqualTo(1);
    assertThat(run.err().lines()).as("stderr: %s", run.err()).hasSize(1);
    assertThat(run.err()).doesNotContain("Exception").doesNotContain("at dev.graft").doesNotContain("bug");
  }
}
