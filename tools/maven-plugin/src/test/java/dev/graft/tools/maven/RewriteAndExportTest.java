package dev.graft.tools.maven;

import static org.assertj.core.api.Assertions.assertThat;

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
