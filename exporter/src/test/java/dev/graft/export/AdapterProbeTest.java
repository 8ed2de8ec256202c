package dev.graft.export;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.graft.ir.Model;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.io.SaveOptions;
import dev.graft.ir.tensor.ExternalTensor;
import dev.graft.rewrite.recipe.Recipe;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.StandardOpenOption;
import java.util.List;
import dev.graft.ir.Value;
import dev.graft.ir.io.SafeTensors;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.TrainableRegistry;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.function.Consumer;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The adapter export's probe ({@link AdapterProbe}, {@link GraphMatch}): it passes a right
 * adapter (which ORT then reproduces as whole models: the independent check), catches one wrong
 * tensor in each written file and names it, catches a frozen weight the tuned model changed, and
 * refuses adapters it cannot check.
 */
class AdapterProbeTest {
  private static final String B2 = "layer.2.attention.query.lora_B";
  private static TunedMiniLm miniLm;
  @TempDir Path dir;

  @BeforeAll
  static void load() {
    miniLm = new TunedMiniLm();
  }

  @Test
  void aProbedAdapterChecksEachModuleAndReproducesTheTunedModel() {
    Model tuned = miniLm.loraOnly(21);
    Path out = dir.resolve("adapter");

    AdapterExport.AdapterReport r = AdapterExport.write(tuned, miniLm.path, out, ExportOptions.Verify.PROBE);

    assertThat(r.verifiedBy()).isEqualTo(ExportOptions.Verify.PROBE);
    // 12 LoRA modules (query and value of 6 layers), once read back from adapter.safetensors and
    // once fed by ORT's LoRA loader from adapter.onnx_adapter; the tensors are copied, so exact.
    for (ExportVerifier.Verification v : new ExportVerifier.Verification[] {r.applied(), r.ortAdapter()}) {
      assertThat(v.outputs()).hasSize(12).allMatch(o -> o.name().startsWith("probe lora layer."));
      assertThat(v.maxAbsDiff()).isZero();
    }
    assertThat(r.appliedSummary()).startsWith("graph identical to the tuned one; probed 12 modules on 4 random rows");
    // The oracle: ORT runs whole models, the adapter applied to the base and the multi-LoRA graph.
    Map<String, Tensor> feeds = ExportVerifier.heldOutInputs(tuned, 3);
    assertThat(ExportVerifier.compare(tuned, AdapterExport.apply(miniLm.path, out), feeds, 1e-4).passed()).isTrue();
    assertThat(
            MultiLora.verify(tuned, out.resolve(AdapterExport.BASE_WITH_INPUTS), out.resolve(AdapterExport.ORT_ADAPTER), feeds)
                .passed())
        .isTrue();
  }

  @Test
  void oneWrongTensorInTheWrittenSafetensorsIsRefusedNamingIt() {
    Model tuned = miniLm.loraOnly(22);
    Path out = dir.resolve("adapter");
    // adapter.safetensors as written, but one entry of one B off by 0.05 (a lost write, a bad disk).
    Consumer<Path> corrupt = tmp -> {
      Path file = tmp.resolve(AdapterExport.SAFETENSORS);
      SafeTensors.Contents c = SafeTensors.read(file);
      Map<String, Tensor> tensors = new LinkedHashMap<>(c.tensors());
      tensors.put(B2, plus(tensors.get(B2), 5, 0.05f));
      SafeTensors.write(file, tensors, c.metadata());
    };

    assertThatThrownBy(() -> AdapterExport.write(tuned, miniLm.path, out, ExportOptions.Verify.PROBE, corrupt))
        .isInstanceOf(ExportVerifier.VerificationFailedException.class)
        .hasMessageContaining("lora layer.2.attention.query, with layer.2.attention.query.lora_A, " + B2)
        .hasMessageContaining("as read back from adapter.safetensors")
        .hasMessageContaining("Nothing was written");
    assertNothingWritten(out);
  }

  @Test
  void oneWrongTensorInTheOnnxAdapterIsRefusedThroughOrtsOwnLoader() {
    Model tuned = miniLm.loraOnly(23);
    Path out = dir.resolve("adapter");
    Consumer<Path> corrupt = tmp -> {
      Path file = tmp.resolve(AdapterExport.ORT_ADAPTER);
      Map<String, Tensor> params = new LinkedHashMap<>(OnnxAdapterFile.read(file));
      params.put(B2, plus(params.get(B2), 7, -0.05f));
      OnnxAdapterFile.write(file, params, 1, 1);
    };

    assertThatThrownBy(() -> AdapterExport.write(tuned, miniLm.path, out, ExportOptions.Verify.PROBE, corrupt))
        .isInstanceOf(ExportVerifier.VerificationFailedException.class)
        .hasMessageContaining("lora layer.2.attention.query")
        .hasMessageContaining("as read back from adapter.onnx_adapter");
    assertNothingWritten(out);

    // A parameter missing from the file: ORT cannot feed the probe's input of that name.
    Consumer<Path> drop = tmp -> {
      Path file = tmp.resolve(AdapterExport.ORT_ADAPTER);
      Map<String, Tensor> params = new LinkedHashMap<>(OnnxAdapterFile.read(file));
      params.remove(B2);
      OnnxAdapterFile.write(file, params, 1, 1);
    };
    assertThatThrownBy(() -> AdapterExport.write(tuned, miniLm.path, out, ExportOptions.Verify.PROBE, drop))
        .isInstanceOf(ExportVerifier.VerificationFailedException.class)
        .hasMessageContaining("ONNX Runtime could not run the adapter's modules with the tensors of adapter.onnx_adapter");
    assertNothingWritten(out);
  }

  @Test
  void aFrozenWeightTheTunedModelChangedIsCaughtByTheGraphMatch() {
    Model tuned = miniLm.loraOnly(24);
    // A frozen weight edited after the rewrite: the adapter cannot carry it, so applied to the
    // base it does not give the tuned model.
    Set<String> trainables =
        TrainableRegistry.read(tuned).stream().map(TrainableRegistry.Entry::initializer).collect(Collectors.toSet());
    Value w = tuned.graph().initializers().stream()
        .filter(v -> v.initializer().orElseThrow().dims().length == 2 && !trainables.contains(v.name()))
        .skip(5)
        .findFirst().orElseThrow();
    tuned.graph().setInitializer(w, plus(w.initializer().orElseThrow(), 3, 0.5f).withName(w.name()));
    Path out = dir.resolve("adapter");

    assertThatThrownBy(() -> AdapterExport.write(tuned, miniLm.path, out, ExportOptions.Verify.PROBE))
        .isInstanceOf(ExportVerifier.VerificationFailedException.class)
        .hasMessageContaining("the adapter applied to the base differs from the tuned graph: initializer '" + w.name() + "' holds other data")
        .hasMessageContaining("--verify full");
    assertNothingWritten(out);
    // The whole-model check sees it too.
    assertThatThrownBy(() -> AdapterExport.write(tuned, miniLm.path, out, ExportOptions.Verify.FULL))
        .isInstanceOf(ExportVerifier.VerificationFailedException.class);
  }

  @Test
  void frozenTensorsInDataFilesAreTheSameRegionOfALinkedFileOrEqualBytesOfACopiedOne() throws Exception {
    Path base = dir.resolve("base").resolve("base.onnx");
    Files.createDirectories(base.getParent());
    ModelIO.save(miniLm.base(), base, SaveOptions.external());
    Model m = WorkingModels.load(base);
    Recipe.parse("passes: [{method: lora, targets: \"layer.*.attention.{query,value}\"}]", "lora.yaml").manager().run(m);
    TunedMiniLm.randomise(m, 27);
    Path linked = dir.resolve("linked").resolve("tuned.onnx"); // as graft train saves: the base's data linked
    Path copied = dir.resolve("copied").resolve("tuned.onnx"); // a plain save: the frozen weights copied
    Files.createDirectories(linked.getParent());
    Files.createDirectories(copied.getParent());
    ModelIO.saveWithLinkedData(m, linked);
    ModelIO.save(m, copied, SaveOptions.external());

    for (Path tuned : List.of(linked, copied)) {
      AdapterExport.AdapterReport r =
          AdapterExport.write(WorkingModels.load(tuned), base, tuned.resolveSibling("adapter"), ExportOptions.Verify.PROBE);
      assertThat(r.verifiedBy()).isEqualTo(ExportOptions.Verify.PROBE);
      assertThat(r.applied().outputs()).hasSize(12);
    }

    // One float of a frozen weight changed in the copied data file: the byte comparison (made
    // ahead, on its own thread) finds it.
    Model copy = WorkingModels.load(copied);
    Set<String> trainables =
        TrainableRegistry.read(copy).stream().map(TrainableRegistry.Entry::initializer).collect(Collectors.toSet());
    ExternalTensor w = copy.graph().initializers().stream()
        .filter(v -> !trainables.contains(v.name()) && v.initializer().orElseThrow() instanceof ExternalTensor)
        .map(v -> (ExternalTensor) v.initializer().orElseThrow())
        .skip(5)
        .findFirst().orElseThrow();
    try (FileChannel ch = FileChannel.open(w.file(), StandardOpenOption.READ, StandardOpenOption.WRITE)) {
      ByteBuffer b = ByteBuffer.allocate(1);
      ch.read(b, w.offset() + 3);
      b.put(0, (byte) (b.get(0) ^ 0x80)); // the sign bit of the first entry
      ch.write(b.flip(), w.offset() + 3);
    }
    Path out = dir.resolve("copied").resolve("adapter2");
    assertThatThrownBy(() -> AdapterExport.write(WorkingModels.load(copied), base, out, ExportOptions.Verify.PROBE))
        .isInstanceOf(ExportVerifier.VerificationFailedException.class)
        .hasMessageContaining("initializer '" + w.name() + "' holds other data");
    assertThat(out).doesNotExist();
  }

  @Test
  void probeRefusesWhatItCannotCheckAndAutoRunsWholeModelsForASmallModel() {
    Model tuned = miniLm.tuned(25); // LoRA, LayerNorm-affine and a head
    Set<String> trainables =
        TrainableRegistry.read(tuned).stream().map(TrainableRegistry.Entry::initializer).collect(Collectors.toSet());
    assertThat(AdapterProbe.branches(tuned, trainables).ok()).isFalse();
    assertThatThrownBy(() -> AdapterExport.write(tuned, miniLm.path, dir.resolve("p"), ExportOptions.Verify.PROBE))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("--verify probe checks adapters whose trained tensors all sit in linear branches")
        .hasMessageContaining("use --verify full");
    assertThat(dir.resolve("p")).doesNotExist();

    AdapterExport.AdapterReport auto = AdapterExport.write(miniLm.loraOnly(26), miniLm.path, dir.resolve("a"));
    assertThat(auto.verifiedBy()).isEqualTo(ExportOptions.Verify.FULL);
    assertThat(auto.applied().outputs()).extracting(ExportVerifier.OutputDiff::name).contains("last_hidden_state");
  }

  private void assertNothingWritten(Path out) {
    assertThat(out).doesNotExist();
    try (Stream<Path> left = Files.list(dir)) {
      assertThat(left).as("temporary folders left behind").isEmpty();
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  private static Tensor plus(Tensor t, int i, float delta) {
    float[] v = new float[Math.toIntExact(t.numElements())];
    t.rawData().duplicate().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(v);
    v[i] += delta;
    return DenseTensor.ofFloats(t.name(), t.dims(), v);
  }
}
