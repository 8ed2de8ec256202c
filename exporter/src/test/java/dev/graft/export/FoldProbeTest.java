package dev.graft.export;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Use;
import dev.graft.ir.Value;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.io.SaveOptions;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.GraftTags;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link FoldProbe} and {@code --verify}'s modes: the probe passes a right fold, catches one
 * wrong weight (as stored) and names it, and a probed export reproduces the tuned model when
 * ORT runs both (the independent check).
 */
class FoldProbeTest {
  private static TunedMiniLm miniLm;
  @TempDir Path dir;

  @BeforeAll
  static void load() {
    miniLm = new TunedMiniLm();
  }

  @Test
  void aProbedExportChecksEachMergedWeightAndReproducesTheTunedModel() {
    Model tuned = miniLm.loraOnly(11);
    Path out = dir.resolve("merged.onnx");

    ExportReport r =
        MergedExport.write(tuned, out, ExportOptions.defaults().withVerify(ExportOptions.Verify.PROBE));

    assertThat(r.verifiedBy()).isEqualTo(ExportOptions.Verify.PROBE);
    // 12 LoRA modules (query and value of 6 layers), one probe each, all within 1e-4.
    assertThat(r.verification().outputs()).hasSize(12);
    assertThat(r.verification().outputs()).allMatch(o -> o.name().startsWith("probe lora layer."));
    assertThat(r.verification().maxAbsDiff()).isLessThanOrEqualTo(1e-5);
    assertThat(r.verificationSummary()).startsWith("probed 12 merged weights on 4 random rows");
    // The oracle: ORT runs the tuned model and the export as written.
    Map<String, Tensor> feeds = ExportVerifier.heldOutInputs(tuned, 3);
    assertThat(ExportVerifier.compare(tuned, ModelIO.load(out), feeds, 1e-4).passed()).isTrue();
  }

  @Test
  void oneWrongWeightFailsItsProbeNamingIt() {
    Model tuned = miniLm.loraOnly(12);
    Model export = tuned.copy();
    AtomicInteger seen = new AtomicInteger();
    // The store hands back the fifth merged weight with one entry off by 0.05 (a tenth of a
    // typical weight of MiniLM, the size of a lost LoRA delta).
    UnaryOperator<Tensor> corruptFifth =
        t -> seen.incrementAndGet() == 5 ? plus(t, 1234, 0.05f) : t;

    assertThatThrownBy(
            () ->
                DeltaFolding.fold(
                    export, corruptFifth, DeltaFolding.Quantized.REFUSE, new FoldProbe(1e-4, 7)))
        .isInstanceOf(ExportVerifier.VerificationFailedException.class)
        .hasMessageContaining("the merged weight of lora layer.2.attention.query")
        .hasMessageContaining("Nothing was written");
    assertThat(seen).hasValue(5);

    // The same fold with a right store passes every probe.
    FoldProbe probe = new FoldProbe(1e-4, 7);
    DeltaFolding.fold(tuned.copy(), UnaryOperator.identity(), DeltaFolding.Quantized.REFUSE, probe);
    assertThat(probe.count()).isEqualTo(12);
    assertThat(probe.result().passed()).isTrue();
  }

  @Test
  void aStreamedFoldThatMissesTheBranchFailsItsProbeInTheFoldsOwnRun() throws Exception {
    // A hand-edited branch that is not linear in x: a Relu after x·A, tagged as the LoRA's own.
    // The fold evaluates it on the identity (W + Relu(A)·B·s), the tuned graph on x
    // (x·W + Relu(x·A)·B·s): the probe, computed in the fold's run on the weight ORT wrote, must
    // see the difference and stop the export before anything is written.
    Model tuned = miniLm.loraOnly(15);
    Graph g = tuned.graph();
    Node xa =
        g.nodes().stream()
            .filter(n -> n.is("MatMul") && GraftTags.method(n).filter("lora"::equals).isPresent())
            .filter(n -> n.input(0).producer().map(p -> !GraftTags.isGraft(p)).orElse(true))
            .filter(n -> GraftTags.module(n).orElseThrow().contains("layer.3.attention.value"))
            .findFirst()
            .orElseThrow();
    Value a = xa.output();
    Node relu = new Node("", "Relu", List.of(a), List.of(a.name() + "_relu"), List.of(), xa.name() + "_relu");
    GraftTags.tag(relu, "lora", GraftTags.module(xa).orElseThrow(), "hand-edit");
    g.insertAfter(xa, relu);
    for (Use u : List.copyOf(a.uses())) if (u.node() != relu) u.node().setInput(u.index(), relu.output());
    ModelIO.save(tuned, dir.resolve("edited.onnx"), SaveOptions.external());
    Model edited = ModelIO.load(dir.resolve("edited.onnx"));

    assertThatThrownBy(
            () ->
                MergedExport.write(
                    edited, dir.resolve("m.onnx"), ExportOptions.defaults().withVerify(ExportOptions.Verify.PROBE),
                    m -> {}, true))
        .isInstanceOf(ExportVerifier.VerificationFailedException.class)
        .hasMessageContaining("the merged weight of lora " + GraftTags.module(xa).orElseThrow())
        .hasMessageContaining("Nothing was written");
    assertThat(dir.resolve("m.onnx")).doesNotExist();
    assertThat(dir.resolve("m.onnx.data")).doesNotExist();
    try (var files = Files.list(dir)) {
      assertThat(files.map(p -> p.getFileName().toString())).as("no staged file left").allMatch(n -> n.startsWith("edited"));
    }
  }

  @Test
  void autoProbesAStreamingLoraExportAndChecksWholeModelsOtherwise() throws Exception {
    ModelIO.save(miniLm.loraOnly(13), dir.resolve("tuned.onnx"), SaveOptions.external());
    Model tuned = ModelIO.load(dir.resolve("tuned.onnx"));

    ExportReport streamed = MergedExport.write(tuned, dir.resolve("a.onnx"), ExportOptions.defaults(), m -> {}, true);
    ExportReport inMemory = MergedExport.write(tuned, dir.resolve("b.onnx"), ExportOptions.defaults(), m -> {}, false);
    ExportReport forced =
        MergedExport.write(
            tuned, dir.resolve("c.onnx"), ExportOptions.defaults().withVerify(ExportOptions.Verify.FULL), m -> {}, true);

    assertThat(streamed.verifiedBy()).isEqualTo(ExportOptions.Verify.PROBE);
    assertThat(inMemory.verifiedBy()).isEqualTo(ExportOptions.Verify.FULL);
    assertThat(forced.verifiedBy()).isEqualTo(ExportOptions.Verify.FULL);
    assertThat(forced.verification().outputs()).extracting(ExportVerifier.OutputDiff::name).contains("last_hidden_state");
    // The probed stream wrote what the whole-model check accepted, byte for byte.
    assertThat(Files.mismatch(dir.resolve("a.onnx.data"), dir.resolve("c.onnx.data"))).isEqualTo(-1L);
  }

  @Test
  void probeRefusesFoldsItCannotCheckAndNoneWritesUnchecked() {
    Model tuned = miniLm.tuned(14); // LoRA, LayerNorm-affine and a head
    assertThatThrownBy(
            () ->
                MergedExport.write(
                    tuned, dir.resolve("p.onnx"), ExportOptions.defaults().withVerify(ExportOptions.Verify.PROBE)))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("--verify probe checks merged linear weights")
        .hasMessageContaining("layernorm-affine")
        .hasMessageContaining("--verify full");
    assertThat(dir.resolve("p.onnx")).doesNotExist();

    // AUTO picks the whole-model check for it.
    ExportReport auto = MergedExport.write(tuned, dir.resolve("auto.onnx"), ExportOptions.defaults(), m -> {}, true);
    assertThat(auto.verifiedBy()).isEqualTo(ExportOptions.Verify.FULL);

    ExportReport none =
        MergedExport.write(tuned, dir.resolve("n.onnx"), ExportOptions.defaults().withVerify(ExportOptions.Verify.NONE));
    assertThat(none.verifiedBy()).isEqualTo(ExportOptions.Verify.NONE);
    assertThat(none.verification().outputs()).isEmpty();
    assertThat(none.verificationSummary()).contains("unchecked");
    assertThat(dir.resolve("n.onnx")).exists();
  }

  /** A copy of {@code t} with element {@code i} increased by {@code delta}. */
  private static Tensor plus(Tensor t, int i, float delta) {
    float[] v = new float[Math.toIntExact(t.numElements())];
    t.rawData().duplicate().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(v);
    v[i] += delta;
    return DenseTensor.ofFloats(t.name(), t.dims(), v);
  }
}
