package dev.graft.export;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.graft.ir.DataType;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.OpCensus;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.io.SaveOptions;
import dev.graft.ir.tensor.ExternalTensor;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.GraftTags;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.peft.ClassificationHeadPass;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class MergedExportTest {
  private static TunedMiniLm miniLm;
  @TempDir Path dir;

  @BeforeAll
  static void load() {
    miniLm = new TunedMiniLm();
  }

  @Test
  void mergedMiniLmHasTheBaseCensusPlusTheHeadAndReproducesTheTunedOutputs() {
    Model tuned = miniLm.tuned(1);
    Model baseWithHead = miniLm.baseWithHead();
    Path out = dir.resolve("merged.onnx");

    ExportReport r = MergedExport.write(tuned, out, ExportOptions.defaults());

    Model merged = ModelIO.load(out);
    assertThat(OpCensus.of(merged.graph())).isEqualTo(OpCensus.of(baseWithHead.graph()));
    assertThat(merged.graph().nodes()).hasSameSizeAs(baseWithHead.graph().nodes());
    // 12 LoRA modules + 13 norms (embeddings + 2 per layer) folded; the head stays.
    assertThat(r.fold().folded()).hasSize(12 + 13);
    assertThat(r.fold().kept()).singleElement().asString().startsWith("head head");
    assertThat(r.fold().dropoutsRemoved()).isEqualTo(12);
    assertThat(r.verification().maxAbsDiff()).isLessThanOrEqualTo(1e-4);
    assertThat(r.verification().outputs()).extracting(ExportVerifier.OutputDiff::name)
        .containsExactly("last_hidden_state", ClassificationHeadPass.LOGITS);
    // Only the head's parameters remain trainable; nothing Graft made but the head is left.
    assertThat(TrainableRegistry.read(merged)).extracting(TrainableRegistry.Entry::method).containsOnly("head");
    for (Node n : merged.graph().nodes()) {
      if (GraftTags.isGraft(n)) assertThat(GraftTags.method(n)).contains("head");
    }
    assertThat(r.censusChange()).anyMatch(s -> s.startsWith("MatMul ")).anyMatch(s -> s.startsWith("Dropout "));

    // The merged export computes the tuned model, not the base: the deltas are really in there.
    Map<String, Tensor> feeds = ExportVerifier.heldOutInputs(tuned, 99);
    assertThat(ExportVerifier.compare(tuned, merged, feeds, 1e-4).maxAbsDiff()).isLessThanOrEqualTo(1e-4);
    assertThat(ExportVerifier.compare(baseWithHead, merged, feeds, 1e-4).maxAbsDiff()).isGreaterThan(1e-2);
  }

  @Test
  void aCorruptedExportFailsVerificationAndNothingIsWritten() {
    Model tuned = miniLm.tuned(2);
    Path out = dir.resolve("broken.onnx");
    assertThatThrownBy(
            () ->
                MergedExport.write(
                    tuned,
                    out,
                    ExportOptions.defaults(),
                    m -> {
                      // Corrupt one folded weight: the first LayerNorm's gamma loses its delta.
                      Value gamma = m.graph().initializer("embeddings.LayerNorm.weight").orElseThrow();
                      Tensor t = gamma.initializer().orElseThrow();
                      float[] ones = new float[Math.toIntExact(t.numElements())];
                      java.util.Arrays.fill(ones, 1f);
                      m.graph().setInitializer(gamma, DenseTensor.ofFloats(gamma.name(), t.dims(), ones));
                    }))
        .isInstanceOf(ExportVerifier.VerificationFailedException.class)
        .hasMessageContaining("last_hidden_state")
        .hasMessageContaining("Nothing was written");
    assertThat(out).doesNotExist();
    assertThat(dir).isEmptyDirectory();
  }

  @Test
  void aStreamingExportWritesEachMergedWeightOnceIntoItsOwnDataFile() throws Exception {
    // The tuned model as a large one arrives: weights in external data, read lazily.
    ModelIO.save(miniLm.tuned(4), dir.resolve("tuned.onnx"), SaveOptions.external());
    Model tuned = ModelIO.load(dir.resolve("tuned.onnx"));
    Path out = dir.resolve("merged.onnx");

    ExportReport r = MergedExport.write(tuned, out, ExportOptions.defaults(), m -> {}, true);

    assertThat(r.fold().folded()).hasSize(12 + 13);
    assertThat(r.verification().maxAbsDiff()).isLessThanOrEqualTo(1e-4);
    assertThat(r.timing().foldSeconds()).isPositive();
    // No spill or staging file is left: the folder holds the tuned model and the export.
    try (var files = Files.list(dir)) {
      assertThat(files.map(p -> p.getFileName().toString()))
          .containsExactlyInAnyOrder("tuned.onnx", "tuned.onnx.data", "merged.onnx", "merged.onnx.data");
    }
    Model merged = ModelIO.load(out);
    // The folded query weight reads the export's data file, and each byte of it is written once:
    // the file is the tensors it holds plus alignment, no second copy of the merged weights.
    Node queryLinear = merged.graph().nodes().stream()
        .filter(n -> n.is("MatMul") && n.name() != null && n.name().contains("layer.0/attention/self/query"))
        .findFirst().orElseThrow();
    Tensor query = queryLinear.input(1).initializer().orElseThrow();
    assertThat(query).isInstanceOf(ExternalTensor.class);
    assertThat(((ExternalTensor) query).location()).isEqualTo("merged.onnx.data");
    long held = 0;
    int count = 0;
    for (Value v : merged.graph().initializers()) {
      if (v.initializer().orElseThrow() instanceof ExternalTensor e) {
        held += e.length();
        count++;
      }
    }
    assertThat(Files.size(out.resolveSibling("merged.onnx.data"))).isBetween(held, held + 4096L * count);
    // Read back from disk, the export computes the tuned model.
    Map<String, Tensor> feeds = ExportVerifier.heldOutInputs(tuned, 17);
    assertThat(ExportVerifier.compare(tuned, merged, feeds, 1e-4).maxAbsDiff()).isLessThanOrEqualTo(1e-4);
    assertThat(ExportVerifier.compare(miniLm.baseWithHead(), merged, feeds, 1e-4).maxAbsDiff()).isGreaterThan(1e-2);
  }

  @Test
  void aStreamingExportThatFailsVerificationLeavesNothingBehind() throws Exception {
    ModelIO.save(miniLm.tuned(5), dir.resolve("tuned.onnx"), SaveOptions.external());
    Model tuned = ModelIO.load(dir.resolve("tuned.onnx"));
    Path out = dir.resolve("broken.onnx");
    assertThatThrownBy(
            () ->
                MergedExport.write(
                    tuned,
                    out,
                    ExportOptions.defaults(),
                    m -> {
                      Value gamma = m.graph().initializer("embeddings.LayerNorm.weight").orElseThrow();
                      Tensor t = gamma.initializer().orElseThrow();
                      m.graph().setInitializer(gamma, DenseTensor.ofFloats(gamma.name(), t.dims(), new float[(int) t.numElements()]));
                    },
                    true))
        .isInstanceOf(ExportVerifier.VerificationFailedException.class);
    try (var files = Files.list(dir)) {
      assertThat(files.map(p -> p.getFileName().toString())).containsExactlyInAnyOrder("tuned.onnx", "tuned.onnx.data");
    }
  }

  @Test
  void aStreamingFp16ExportSpillsTheMergedWeightsAndLeavesOnlyTheExport() throws Exception {
    ModelIO.save(miniLm.tuned(6), dir.resolve("tuned.onnx"), SaveOptions.external());
    Model tuned = ModelIO.load(dir.resolve("tuned.onnx"));
    Path out = dir.resolve("half.onnx");

    ExportReport r = MergedExport.write(tuned, out, ExportOptions.defaults().withFp16(true), m -> {}, true);

    assertThat(r.fold().folded()).hasSize(12 + 13);
    assertThat(r.verification().maxAbsDiff()).isLessThanOrEqualTo(ExportVerifier.FP16_TOLERANCE);
    // The fp32 spill of the merged weights is gone; the data file holds fp16 weights only.
    try (var files = Files.list(dir)) {
      assertThat(files.map(p -> p.getFileName().toString()))
          .containsExactlyInAnyOrder("tuned.onnx", "tuned.onnx.data", "half.onnx", "half.onnx.data");
    }
    assertThat(Files.size(out.resolveSibling("half.onnx.data"))).isLessThan(50_000_000L);
    Map<String, Tensor> feeds = ExportVerifier.heldOutInputs(tuned, 19);
    assertThat(ExportVerifier.compare(tuned, ModelIO.load(out), feeds, ExportVerifier.FP16_TOLERANCE).passed()).isTrue();
  }

  @Test
  void fp16StorageWithExternalDataAndAChosenIrVersion() throws Exception {
    Model tuned = miniLm.tuned(3);
    Path out = dir.resolve("half.onnx");
    ExportReport r =
        MergedExport.write(tuned, out, ExportOptions.defaults().withFp16(true).withExternalData(true).withIrVersion(8L));
    assertThat(r.fp16Initializers()).isGreaterThan(30);
    assertThat(r.verification().maxAbsDiff()).isLessThanOrEqualTo(ExportVerifier.FP16_TOLERANCE);
    assertThat(out.resolveSibling("half.onnx.data")).exists();
    Model half = ModelIO.load(out);
    assertThat(half.irVersion()).isEqualTo(8);
    long fp16Bytes = half.graph().initializers().stream()
        .map(v -> v.initializer().orElseThrow())
        .filter(t -> t.dataType() == DataType.FLOAT16)
        .mapToLong(Tensor::byteSize)
        .sum();
    assertThat(fp16Bytes).isGreaterThan(40_000_000L); // MiniLM's ~22.7M parameters, 2 bytes each
    assertThat(Files.size(out.resolveSibling("half.onnx.data"))).isLessThan(50_000_000L);
    // The file as written, read back, still reproduces the tuned model.
    Map<String, Tensor> feeds = ExportVerifier.heldOutInputs(tuned, 7);
    assertThat(ExportVerifier.compare(tuned, half, feeds, ExportVerifier.FP16_TOLERANCE).passed()).isTrue();
  }

  @Test
  void irVersionsTheRuntimeCannotLoadOrTheOpsetForbidsAreRefused() {
    Model tuned = miniLm.tuned(4);
    Path out = dir.resolve("x.onnx");
    assertThatThrownBy(() -> MergedExport.write(tuned, out, ExportOptions.defaults().withIrVersion(99L)))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("newer than the ONNX Runtime in use");
    assertThatThrownBy(() -> MergedExport.write(tuned, out, ExportOptions.defaults().withIrVersion(5L)))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("too old for opset 17");
    assertThat(out).doesNotExist();
    assertThat(IrVersions.ortLoads(10)).isTrue();
  }
}
