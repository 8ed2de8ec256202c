package dev.graft.tools.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.export.AdapterExport;
import dev.graft.fixtures.PretrainedModels;
import dev.graft.ir.Model;
import dev.graft.ir.io.ModelIO;
import dev.graft.rewrite.PassManager;
import dev.graft.rewrite.recipe.Recipe;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code graft check --adapter}: two LoRA adapters (all-MiniLM-L6-v2, r = 8 on query and value,
 * plus a head; different random weights) exported adapter-only, served one after the other by one
 * session of {@code base_with_lora_inputs.onnx} in ONNX Runtime for Node.js (the adapter's tensors
 * fed as inputs: Node's ORT has no adapter API) and in ORT Java (its adapter API), each compared
 * with the tuned model it came from, run in ORT Java (the oracle).
 */
class CheckAdaptersTest {
  @TempDir static Path shared;
  private static Path tunedA;
  private static Path tunedB;
  private static Path dirA;
  private static Path dirB;

  @BeforeAll
  static void export() {
    tunedA = tuned("a", 1);
    tunedB = tuned("b", 2);
    dirA = shared.resolve("adapter-a");
    dirB = shared.resolve("adapter-b");
    AdapterExport.write(ModelIO.load(tunedA), PretrainedModels.miniLm(), dirA);
    AdapterExport.write(ModelIO.load(tunedB), PretrainedModels.miniLm(), dirB);
  }

  @Test
  void twoAdaptersServedByOneSessionInOrtNodeAndOrtJavaMatchTheirTunedModels() {
    CliRun run =
        CliRun.of(
            "check", dirA.resolve(AdapterExport.BASE_WITH_INPUTS).toString(),
            "--adapter", adapter(dirA) + "," + adapter(dirB),
            "--reference", tunedA + "," + tunedB,
            "--runtime", "ort-node,ort-java", "--warmup", "0", "--runs", "1");

    assertThat(run.exit()).as(run.out() + run.err()).isZero();
    assertThat(run.out())
        .contains("ort-java (reference, a-tuned.onnx)")
        .contains("ort-java (reference, b-tuned.onnx)")
        .contains("(onnxruntime-node 1.30.0, adapter fed as inputs)")
        .contains("adapter via OrtLoraAdapter");
    List<Double> node = diffs(run.out(), "ort-node");
    List<Double> java = diffs(run.out(), "ort-java");
    assertThat(node).hasSize(2).allSatisfy(d -> assertThat(d).isLessThanOrEqualTo(1e-4));
    assertThat(java).hasSize(2).allSatisfy(d -> assertThat(d).isLessThanOrEqualTo(1e-4));
  }

  @Test
  void anAdapterComparedWithTheOtherTunedModelFails() {
    // The comparison discriminates: adapter A against tuned B differs (and the base model, what
    // Node computed when its adapter feeds were dropped, would differ from both).
    CliRun run =
        CliRun.of(
            "check", dirA.resolve(AdapterExport.BASE_WITH_INPUTS).toString(),
            "--adapter", adapter(dirA), "--reference", tunedB.toString(),
            "--runtime", "ort-node", "--warmup", "0", "--runs", "1");

    assertThat(run.exit()).isEqualTo(1);
    assertThat(run.out()).contains("OVER the tolerance 1e-04");
  }

  @Test
  void oneReferencePerAdapterOrNone() {
    CliRun run =
        CliRun.of(
            "check", dirA.resolve(AdapterExport.BASE_WITH_INPUTS).toString(),
            "--adapter", adapter(dirA) + "," + adapter(dirB), "--reference", tunedA.toString(), "--runtime", "ort-node");

    assertThat(run.exit()).isEqualTo(2);
    assertThat(run.err()).contains("Got 1 --reference model(s) for 2 --adapter file(s)");
  }

  @Test
  void anAdapterForAnotherModelIsRefusedByName() {
    // The merged-free tuned model has no LoRA inputs: the adapter's first tensor names none.
    CliRun run = CliRun.of("check", tunedA.toString(), "--adapter", adapter(dirA), "--runtime", "ort-node");

    assertThat(run.exit()).isEqualTo(1);
    assertThat(run.err()).contains("which is no input of").contains("base_with_lora_inputs.onnx");
  }

  private static String adapter(Path dir) {
    return dir.resolve(AdapterExport.ORT_ADAPTER).toString();
  }

  /** The max |diff| of each line of {@code runtime} with an adapter, in order. */
  private static List<Double> diffs(String out, String runtime) {
    Matcher m = Pattern.compile(Pattern.quote(runtime) + " \\+ adapter\\.onnx_adapter \\([^)]*\\): max \\|diff\\| (\\S+) ").matcher(out);
    List<Double> d = new ArrayList<>();
    while (m.find()) d.add(Double.parseDouble(m.group(1)));
    return d;
  }

  /** MiniLM + LoRA + head through a recipe (so the adapter export can replay it), trainables random. */
  private static Path tuned(String name, long seed) {
    Model m = TrainedMiniLm.base();
    new PassManager(
            Recipe.parse(
                    """
                    passes:
                      - {method: lora, targets: ["layer.*.attention.query", "layer.*.attention.value"], rank: 8, alpha: 16}
                      - {method: classification-head, classes: 2, pooling: mean}
                    """,
                    "check-adapters.yaml")
                .passes())
        .run(m);
    TrainedMiniLm.randomise(m, seed, true);
    Path out = shared.resolve(name + "-tuned.onnx");
    ModelIO.save(m, out);
    return out;
  }
}
