package dev.graft.tools.maven;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.fixtures.PretrainedModels;
import dev.graft.fixtures.TinyModels;
import dev.graft.ir.Model;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.TrainableRegistry;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** graft:rewrite then graft:export on the BERT-like fixture, checked on ONNX Runtime. */
class RewriteAndExportTest {
  static final int RANK = 4;
  static final String RECIPE =
      """
      passes:
        - method: lora
          targets: "layer.*.attention.{query,value}"
          rank: 4
          alpha: 8
      """;

  @TempDir Path dir;

  @Test
  void rewriteKeepsOutputsAndRecordsTheClosedFormParameterCount() throws Exception {
    Path base = saveBase();
    Path recipe = Files.writeString(dir.resolve("lora.yaml"), RECIPE);
    Path tuned = dir.resolve("out/sub/tuned.onnx"); // folders made by the goal
    Goals.CapturingLog log = new Goals.CapturingLog();

    Goals.rewrite(base, recipe, tuned, log).execute();

    Model m = ModelIO.load(tuned);
    // query and value in each layer: r * (in + out) each.
    long expected = (long) TinyModels.BERT_LAYERS * 2 * RANK * (TinyModels.BERT_HIDDEN + TinyModels.BERT_HIDDEN);
    assertThat(TrainableRegistry.parameterCount(m)).isEqualTo(expected);
    assertThat(log.text()).contains("lora: 4 changes").contains(String.format("%,d trainable", expected));
    // B starts at zero: ORT computes what it computed on the base.
    assertThat(Ort.maxAbsDiff(Ort.hiddenState(tuned, TinyModels.BERT_VOCAB), Ort.hiddenState(base, TinyModels.BERT_VOCAB)))
        .isLessThan(1e-6);
  }

  @Test
  void anInt8ModelIsRewrittenInItsFloatForm() throws Exception {
    // ONNX Runtime's dynamic quantisation of all-MiniLM-L6-v2: without dequantising, LoRA finds no
    // linear (MatMulInteger), as graft rewrite would not either.
    Path base = PretrainedModels.miniLmQuantized();
    Path recipe = Files.writeString(dir.resolve("lora.yaml"), RECIPE);
    Path tuned = dir.resolve("tuned.onnx");
    Goals.CapturingLog log = new Goals.CapturingLog();

    Goals.rewrite(base, recipe, tuned, log).execute();

    Model m = ModelIO.load(tuned);
    assertThat(m.graph().nodes()).noneMatch(n -> n.is("MatMulInteger") || n.is("DynamicQuantizeLinear"));
    // query and value in each of MiniLM's 6 layers: r * (384 + 384) each.
    long expected = 6L * 2 * RANK * (384 + 384);
    assertThat(TrainableRegistry.parameterCount(m)).isEqualTo(expected);
    assertThat(log.text()).contains("int8 model: 36 MatMulInteger linears").contains("lora: 12 changes");
    // B starts at zero, so the float form computes what the int8 model approximates (activations
    // are no longer rounded to 8 bits): close to ORT's run of the int8 file, not equal.
    float[] floatForm = Ort.hiddenState(tuned, 30522);
    float[] int8 = Ort.hiddenState(base, 30522);
    double scale = Ort.maxAbsDiff(int8, new float[int8.length]);
    double diff = Ort.maxAbsDiff(floatForm, int8);
    System.out.println("int8 file vs its float form, max |diff| of last_hidden_state: " + diff + " (max |h| " + scale + ")");
    assertThat(diff).isLessThan(0.1 * scale);
  }

  @Test
  void mergedExportReproducesATrainedTunedModel() throws Exception {
    Path base = saveBase();
    Path recipe = Files.writeString(dir.resolve("lora.yaml"), RECIPE);
    Path tuned = dir.resolve("tuned.onnx");
    Goals.rewrite(base, recipe, tuned, new Goals.CapturingLog()).execute();
    // Stand in for training: give every B random values, so the fold has something to fold.
    Model m = ModelIO.load(tuned);
    SplittableRandom r = new SplittableRandom(11);
    for (TrainableRegistry.Entry e : TrainableRegistry.read(m)) {
      if (!e.role().equals("B")) continue;
      var v = m.graph().initializer(e.initializer()).orElseThrow();
      Tensor t = v.initializer().orElseThrow();
      float[] values = new float[Math.toIntExact(t.numElements())];
      for (int i = 0; i < values.length; i++) values[i] = (float) (r.nextDouble() - 0.5) * 0.2f;
      m.graph().setInitializer(v, DenseTensor.ofFloats(t.name(), t.dims(), values));
    }
    ModelIO.save(m, tuned);
    Path merged = dir.resolve("merged.onnx");
    Goals.CapturingLog log = new Goals.CapturingLog();

    Goals.export(tuned, merged, log).execute();

    float[] tunedOut = Ort.hiddenState(tuned, TinyModels.BERT_VOCAB);
    float[] mergedOut = Ort.hiddenState(merged, TinyModels.BERT_VOCAB);
    float[] baseOut = Ort.hiddenState(base, TinyModels.BERT_VOCAB);
    assertThat(Ort.maxAbsDiff(mergedOut, tunedOut)).isLessThan(1e-4);
    assertThat(Ort.maxAbsDiff(tunedOut, baseOut)).as("the trained delta changes the outputs").isGreaterThan(1e-3);
    Model out = ModelIO.load(merged);
    assertThat(TrainableRegistry.read(out)).isEmpty();
    assertThat(out.graph().nodes()).hasSameSizeAs(ModelIO.load(base).graph().nodes());
    assertThat(log.text()).contains("folded 4 modules").contains("max difference").contains("wrote " + merged);
  }

  @Test
  void adapterOnlyWritesTheAdapterFolder() throws Exception {
    Path base = saveBase();
    Path recipe = Files.writeString(dir.resolve("lora.yaml"), RECIPE);
    Path tuned = dir.resolve("tuned.onnx");
    Goals.rewrite(base, recipe, tuned, new Goals.CapturingLog()).execute();
    Path adapter = dir.resolve("adapter");
    ExportMojo export = Goals.export(tuned, adapter, new Goals.CapturingLog());
    export.adapterOnly = true;
    export.base = base.toFile();

    export.execute();

    assertThat(adapter.resolve("adapter.safetensors")).isRegularFile();
    assertThat(adapter.resolve("adapter_config.json")).isRegularFile();
  }

  @Test
  void skipWritesNothing() throws Exception {
    Path out = dir.resolve("tuned.onnx");
    RewriteMojo g = Goals.rewrite(dir.resolve("absent.onnx"), dir.resolve("absent.yaml"), out, new Goals.CapturingLog());
    g.skip = true;
    g.execute();
    ExportMojo e = Goals.export(dir.resolve("absent.onnx"), out, new Goals.CapturingLog());
    e.skip = true;
    e.execute();
    assertThat(out).doesNotExist();
  }

  private Path saveBase() {
    Path base = dir.resolve("base.onnx");
    ModelIO.save(TinyModels.bertLike(TinyModels.Flavour.FUSED_OPSET17), base);
    return base;
  }
}
