package dev.graft.tools.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.export.ExportOptions;
import dev.graft.export.MergedExport;
import dev.graft.fixtures.PretrainedModels;
import dev.graft.ir.Model;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.ir.io.ModelIO;
import dev.graft.rewrite.GraphPass;
import dev.graft.rewrite.PassManager;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.peft.BottleneckAdapter;
import dev.graft.rewrite.peft.ClassificationHeadPass;
import dev.graft.rewrite.peft.HoulsbyAdapterPass;
import dev.graft.rewrite.peft.LoraPass;
import dev.graft.tools.check.RuntimeCheck;
import dev.graft.tools.check.TargetRuntime;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code graft check} on real exports of all-MiniLM-L6-v2: the quickstart's shape (LoRA r = 8 on
 * query and value, merged, plus a head) and Houlsby adapters kept as nodes, each run in ONNX
 * Runtime for Node.js and OpenCV and compared with the tuned model in ORT Java (the oracle).
 */
class CheckCommandTest {
  @TempDir static Path shared;
  private static Path loraTuned;
  private static Path loraMerged;
  private static Path baseWithHead;

  private static final ClassificationHeadPass.Config HEAD =
      ClassificationHeadPass.Config.of(2, ClassificationHeadPass.Pooling.MEAN).withSeed(5);

  @BeforeAll
  static void export() {
    loraTuned = tuned("lora", new LoraPass(Targets.glob("layer.*.attention.{query,value}"), LoraPass.Config.defaults()));
    loraMerged = shared.resolve("lora-merged.onnx");
    MergedExport.write(ModelIO.load(loraTuned), loraMerged, ExportOptions.defaults());
    Model base = WorkingModels.load(PretrainedModels.miniLm());
    new PassManager(List.of(new ClassificationHeadPass(HEAD))).run(base);
    baseWithHead = shared.resolve("base-head.onnx");
    ModelIO.save(base, baseWithHead);
  }

  @Test
  void theMergedLoraExportRunsInOrtNodeAndOpenCvAsInOrtJava() {
    RuntimeCheck.Report r =
        RuntimeCheck.check(
            loraMerged, loraTuned, List.of("ort-node", "opencv"), new TargetRuntime.RunSettings(1, 3, 2), 1e-4, 7);

    r.results().forEach(x -> System.out.println(x.summary()));
    RuntimeCheck.Result node = r.results().get(0);
    assertThat(node.loaded()).as(node.summary()).isTrue();
    assertThat(node.engine()).isEqualTo("onnxruntime-node 1.30.0");
    assertThat(node.verification().outputs()).extracting(o -> o.name())
        .containsExactly("last_hidden_state", ClassificationHeadPass.LOGITS);
    assertThat(node.verification().maxAbsDiff()).isLessThanOrEqualTo(1e-4);
    assertThat(node.medianMs()).isPositive();

    // OpenCV's importer needs a static graph: it runs the fixed-shape copy whose shape
    // computations ORT folded (without the folding it refused /embeddings/Slice).
    RuntimeCheck.Result cv = r.results().get(1);
    assertThat(cv.loaded()).as(cv.summary()).isTrue();
    assertThat(cv.engine()).isEqualTo("opencv-dnn 4.9.0");
    assertThat(cv.verification().outputs()).extracting(o -> o.name())
        .containsExactly("last_hidden_state", ClassificationHeadPass.LOGITS);
    assertThat(cv.verification().maxAbsDiff()).as(cv.summary()).isLessThanOrEqualTo(1e-4);
  }

  @Test
  void aHoulsbyExportRunsInOrtNodeAsInOrtJava() {
    Path tuned =
        tuned("houlsby", new HoulsbyAdapterPass(Targets.glob("layer.*.ffn"), BottleneckAdapter.Config.defaults()));
    Path merged = shared.resolve("houlsby-merged.onnx");
    MergedExport.write(ModelIO.load(tuned), merged, ExportOptions.defaults());

    CliRun run = CliRun.of("check", merged.toString(), "--reference", tuned.toString(), "--runtime", "ort-node,ort-java", "--runs", "3");

    assertThat(run.exit()).as(run.out() + run.err()).isZero();
    assertThat(run.out()).contains("ort-node (onnxruntime-node 1.30.0): max |diff| ").contains("ort-java (onnxruntime-java ");
    double diff = Double.parseDouble(run.out().replaceAll("(?s).*ort-node \\(onnxruntime-node [^)]*\\): max \\|diff\\| (\\S+) .*", "$1"));
    assertThat(diff).isLessThanOrEqualTo(1e-4);
  }

  @Test
  void theComparisonIsRealAModelThatComputesSomethingElseFails() {
    // The merged export against the base model (same head, no LoRA): ORT Node runs it, but the
    // outputs differ, so check exits 1 and says by how much.
    CliRun run = CliRun.of("check", loraMerged.toString(), "--reference", baseWithHead.toString(), "--runtime", "ort-node", "--runs", "1");

    assertThat(run.exit()).isEqualTo(1);
    assertThat(run.out()).contains("OVER the tolerance 1e-04");
    assertThat(run.err()).contains("differ beyond the tolerance");
  }

  @Test
  void anUnknownRuntimeIsAUsageError() {
    CliRun run = CliRun.of("check", loraMerged.toString(), "--runtime", "tflite");
    assertThat(run.exit()).isEqualTo(2);
    assertThat(run.err()).contains("Unknown runtime 'tflite'; choose from ort-java, ort-node, opencv");
  }

  /** MiniLM + {@code pass} + a mean-pooling head, every trainable random as training would leave it. */
  private static Path tuned(String name, GraphPass pass) {
    return TrainedMiniLm.tune(
        TrainedMiniLm.base(), List.of(pass, new ClassificationHeadPass(HEAD)), name.hashCode(), shared.resolve(name + "-tuned.onnx"));
  }
}
