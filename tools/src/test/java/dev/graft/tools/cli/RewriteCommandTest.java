package dev.graft.tools.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.fixtures.PretrainedModels;
import dev.graft.ir.Model;
import dev.graft.ir.analysis.Verifier;
import dev.graft.ir.io.ModelIO;
import dev.graft.rewrite.TrainableRegistry;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code graft rewrite} on the real all-MiniLM-L6-v2, in process. */
class RewriteCommandTest {
  private static String miniLm;
  private static Path examples;

  @BeforeAll
  static void resolve() {
    miniLm = PretrainedModels.miniLm().toString();
    Path p = Path.of("").toAbsolutePath();
    while (p != null && !Files.isDirectory(p.resolve("examples/recipes"))) p = p.getParent();
    assertThat(p).as("the repo root above %s", Path.of("").toAbsolutePath()).isNotNull();
    examples = p.resolve("examples/recipes");
  }

  @Test
  void recipeFileRewritesAndInspectShowsTheTrainableCount(@TempDir Path dir) throws Exception {
    Path out = dir.resolve("lora.onnx");
    CliRun run = CliRun.of("rewrite", miniLm, out.toString(), "--recipe", examples.resolve("lora.yaml").toString());
    assertThat(run.err()).isEmpty();
    assertThat(run.exit()).isZero();
    assertThat(run.out())
        .contains("lora: 12 changes, 73,728 trainable parameters added")
        .contains("Wrote " + out + ": 73,728 trainable parameters in 24 initializers.");

    Model written = ModelIO.load(out);
    Verifier.verify(written);
    assertThat(TrainableRegistry.parameterCount(written)).isEqualTo(73_728L);
    assertThat(TrainableRegistry.modulesOf(written, "lora")).hasSize(12).contains("layer.5.attention.value");

    Map<?, ?> json = (Map<?, ?>) MiniJson.parse(CliRun.of("inspect", out.toString(), "--json").out());
    assertThat(json.get("trainableParameters")).isEqualTo(73_728L);
    assertThat(json.get("trainableByMethod")).isEqualTo(Map.of("lora", 73_728L));

    // Again on the rewritten file: nothing to do, and it says so.
    Path again = dir.resolve("again.onnx");
    CliRun second = CliRun.of("rewrite", out.toString(), again.toString(), "--recipe", examples.resolve("lora.yaml").toString());
    assertThat(second.exit()).isZero();
    assertThat(second.out()).contains("lora: no change (12 targets already done)");
  }

  @Test
  void anInt8ModelIsRewrittenInItsFloatForm(@TempDir Path dir) throws Exception {
    // ONNX Runtime's dynamic quantisation of MiniLM: without dequantising, LoRA finds no linear.
    Path out = dir.resolve("lora.onnx");
    CliRun run = CliRun.of(
        "rewrite", PretrainedModels.miniLmQuantized().toString(), out.toString(), "--recipe",
        examples.resolve("lora.yaml").toString());
    assertThat(run.err()).isEmpty();
    assertThat(run.exit()).isZero();
    assertThat(run.out())
        .contains("int8 model: 36 MatMulInteger linears (36 weights) and 3 quantised embedding Gathers dequantised")
        .contains("lora: 12 changes, 73,728 trainable parameters added");
    Model written = ModelIO.load(out);
    Verifier.verify(written);
    assertThat(written.graph().nodes()).noneMatch(n -> n.is("MatMulInteger") || n.is("DynamicQuantizeLinear"));

    // Its LoRA belongs to the float form: an adapter for the int8 file is refused, saying what to do.
    CliRun adapter = CliRun.of(
        "export", out.toString(), dir.resolve("adapter").toString(), "--adapter-only", "--base",
        PretrainedModels.miniLmQuantized().toString());
    assertThat(adapter.exit()).isNotZero();
    assertThat(adapter.err()).contains("is an int8 model (36 MatMulInteger linears)").contains("--quantize int8");
  }

  @Test
  void shortFlagsMakeTheSamePassesAsARecipe(@TempDir Path dir) throws Exception {
    Path out = dir.resolve("out.onnx");
    CliRun run =
        CliRun.of(
            "rewrite", miniLm, out.toString(), "--lora", "--rank", "4", "--alpha", "8",
            "--targets", "layer.*.attention.query", "layer.*.ffn.up", "--layers", "1-2", "--head", "3:first");
    assertThat(run.err()).isEmpty();
    assertThat(run.exit()).isZero();
    Model written = ModelIO.load(out);
    // query: 4 * (384 + 384); ffn.up: 4 * (384 + 1536); in layers 1 and 2. Head: 384 * 3 + 3.
    long lora = 2L * (4 * (384 + 384) + 4 * (384 + 1536));
    assertThat(TrainableRegistry.parameterCount(written)).isEqualTo(lora + 384 * 3 + 3);
    assertThat(TrainableRegistry.modulesOf(written, "lora"))
        .containsExactlyInAnyOrder("layer.1.attention.query", "layer.1.ffn.up", "layer.2.attention.query", "layer.2.ffn.up");
    assertThat(written.graph().outputs()).extracting(v -> v.name()).contains("logits", "last_hidden_state");

    Path norms = dir.resolve("norms.onnx");
    CliRun ln = CliRun.of("rewrite", miniLm, norms.toString(), "--layernorm-affine", "--layers", "0");
    assertThat(ln.exit()).as(ln.err()).isZero();
    assertThat(TrainableRegistry.modulesOf(ModelIO.load(norms), "layernorm-affine"))
        .containsExactlyInAnyOrder("layer.0.attention.norm", "layer.0.ffn.norm");
  }

  @Test
  void dryRunListsTheChangesAndWritesNothing(@TempDir Path dir) {
    Path out = dir.resolve("never.onnx");
    CliRun run = CliRun.of("rewrite", miniLm, out.toString(), "--recipe", examples.resolve("houlsby.yaml").toString(), "--dry-run");
    assertThat(run.exit()).as(run.err()).isZero();
    assertThat(run.out())
        .contains("houlsby (dry run): would make 12 changes")
        .contains("  houlsby(r=32,relu) layer.0.attention")
        .contains("  houlsby(r=32,relu) layer.5.ffn")
        .contains("Dry run: nothing written.");
    assertThat(out).doesNotExist();
    // OUT is optional with --dry-run.
    assertThat(CliRun.of("rewrite", miniLm, "--lora", "--dry-run").exit()).isZero();
  }

  @Test
  void targetThatMatchesNothingListsTheModules(@TempDir Path dir) {
    Path out = dir.resolve("out.onnx");
    CliRun run = CliRun.of("rewrite", miniLm, out.toString(), "--lora", "--targets", "layer.*.attention.qkv");
    assertThat(run.exit()).isEqualTo(1);
    assertThat(run.err().lines()).hasSize(1);
    assertThat(run.err())
        .startsWith("graft rewrite: lora: target 'layer.*.attention.qkv' matches no linear module.")
        .contains("36 modules, globs in layers 0..5: layer.*.attention.query, layer.*.attention.key")
        .contains("layer.*.ffn.down");
    assertThat(out).doesNotExist();
  }

  @Test
  void explainNamesEachRefusedCandidateAndWhy() {
    CliRun run = CliRun.of("rewrite", miniLm, "--lora", "--targets", "layer.*.attention.qkv", "--dry-run", "--explain");
    assertThat(run.exit()).isEqualTo(1);
    assertThat(run.err()).contains("matches no linear module").contains("--explain");
    List<String> lines = run.out().lines().toList();
    assertThat(lines.get(0)).isEqualTo("lora, targets 'layer.*.attention.qkv': 0 matched");
    // Every linear module of MiniLM (6 layers x 6, and the pooler when there is one) is refused by name, at its MatMul.
    assertThat(lines)
        .contains("  refused layer.0.attention.query: name does not match 'layer.*.attention.qkv'"
            + " (at MatMul '/encoder/layer.0/attention/self/query/MatMul')")
        .contains("  refused layer.5.ffn.down: name does not match 'layer.*.attention.qkv'"
            + " (at MatMul '/encoder/layer.5/output/dense/MatMul')");
    assertThat(lines.stream().filter(l -> l.contains(": name does not match"))).hasSizeGreaterThanOrEqualTo(36);
    // The attention products are MatMuls discovery did not take as linears, and say why.
    assertThat(lines)
        .anyMatch(l -> l.matches("  refused MatMul '/encoder/layer\\.0/attention/self/MatMul(_1)?': its weight \\(input 1\\)"
            + " is not a constant: it multiplies two activations"));
    // Modules of other kinds are counted, not listed one by one.
    assertThat(lines).anyMatch(l -> l.startsWith("  other kinds, not adapted by lora:") && l.contains("6 attention")
        && l.contains("13 norm"));

    // On request for a target that matches: the matches, and the layer refusals.
    CliRun some = CliRun.of("rewrite", miniLm, "--lora", "--targets", "layer.*.attention.query", "--layers", "4-5",
        "--dry-run", "--explain");
    assertThat(some.exit()).as(some.err()).isZero();
    assertThat(some.out())
        .contains("lora, targets 'layer.*.attention.query in layers 4..5': 2 matched")
        .contains("  matched layer.4.attention.query")
        .contains("  refused layer.0.attention.query: in layer 0, outside layers 4..5")
        .contains("lora (dry run): would make 2 changes");
    // --explain is a dry-run option.
    assertThat(CliRun.of("rewrite", miniLm, "o.onnx", "--lora", "--explain").exit()).isEqualTo(2);
  }

  @Test
  void badRecipesAndBadFlagCombinations(@TempDir Path dir) throws Exception {
    Path recipe = dir.resolve("typo.yaml");
    Files.writeString(recipe, "passes:\n  - method: lora\n    rnak: 8\n");
    CliRun bad = CliRun.of("rewrite", miniLm, dir.resolve("o.onnx").toString(), "--recipe", recipe.toString());
    assertThat(bad.exit()).isEqualTo(1);
    assertThat(bad.err()).contains("Recipe typo.yaml, passes[0] (lora): unknown option 'rnak'; valid options for lora are");

    for (List<String> args :
        List.of(
            List.of("rewrite", miniLm, "o.onnx"),
            List.of("rewrite", miniLm, "o.onnx", "--recipe", recipe.toString(), "--lora"),
            List.of("rewrite", miniLm, "o.onnx", "--rank", "4", "--layernorm-affine"),
            List.of("rewrite", miniLm, "--lora"),
            List.of("rewrite", miniLm, "o.onnx", "--head", "two"))) {
      CliRun run = CliRun.of(args.toArray(String[]::new));
      assertThat(run.exit()).as("%s: %s", args, run.err()).isEqualTo(2);
      assertThat(run.err()).contains("(see 'graft rewrite --help')");
    }
    assertThat(CliRun.of("rewrite", miniLm, "o.onnx").err()).contains("methods: lora, layernorm-affine, classification-head");
    // Validation by the recipe code: a bad value from a flag names the flag's option.
    CliRun pooling = CliRun.of("rewrite", miniLm, dir.resolve("p.onnx").toString(), "--head", "2:avg");
    assertThat(pooling.exit()).isEqualTo(1);
    assertThat(pooling.err()).contains("option 'pooling' is 'avg'; choose one of mean, first, max");
  }

  @Test
  void aModelWithExternalDataIsRewrittenWithoutCopyingItsWeights(@TempDir Path dir) throws Exception {
    Path base = dir.resolve("base.onnx");
    ModelIO.save(ModelIO.load(Path.of(miniLm)), base, dev.graft.ir.io.SaveOptions.external());
    Path out = dir.resolve("lora.onnx");

    CliRun run = CliRun.of("rewrite", base.toString(), out.toString(), "--lora", "--rank", "4");

    assertThat(run.exit()).as(run.err()).isZero();
    assertThat(run.out()).contains("Frozen weights: lora.onnx.base.data (hard links to the input's data, no copy).");
    assertThat(Files.isSameFile(dir.resolve("lora.onnx.base.data"), dir.resolve("base.onnx.data"))).isTrue();
    // Lossless: every weight of the base reads back from the rewritten model with its bytes.
    Model before = ModelIO.load(base);
    Model after = ModelIO.load(out);
    for (var v : before.graph().initializers()) {
      var t = after.graph().initializer(v.name()).orElseThrow().initializer().orElseThrow();
      assertThat(t.rawData()).as(v.name()).isEqualTo(v.initializer().orElseThrow().rawData());
    }
    assertThat(TrainableRegistry.modulesOf(after, "lora")).isNotEmpty();
    // The input's own files are as they were; deleting them leaves the rewrite whole.
    Files.delete(dir.resolve("base.onnx.data"));
    Model reloaded = ModelIO.load(out);
    Verifier.verify(reloaded);
    for (var v : before.graph().initializers()) {
      var t = reloaded.graph().initializer(v.name()).orElseThrow().initializer().orElseThrow();
      assertThat(t.rawData()).as(v.name()).isEqualTo(v.initializer().orElseThrow().rawData());
    }
  }
}
