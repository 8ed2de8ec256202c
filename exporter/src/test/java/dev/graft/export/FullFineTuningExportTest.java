package dev.graft.export;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.fixtures.TinyModels;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.OpCensus;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.peft.FullFineTuningPass;
import java.nio.file.Path;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A fully fine-tuned model exports as itself: same census, its trained weights, no trainable records. */
class FullFineTuningExportTest {
  @TempDir Path dir;

  @Test
  void mergedExportKeepsTheTrainedWeightsAndForgetsTheTrainableRecords() {
    Model tuned = TinyModels.bertLike(TinyModels.Flavour.FUSED_OPSET17);
    new FullFineTuningPass(Targets.all()).run(tuned);
    // "Training": move every trainable weight by noise, so a base weight in the export would show.
    SplittableRandom rnd = new SplittableRandom(7);
    for (TrainableRegistry.Entry e : TrainableRegistry.read(tuned)) {
      Value v = tuned.graph().initializer(e.initializer()).orElseThrow();
      float[] w = v.initializer().orElseThrow().toFloatArray();
      for (int i = 0; i < w.length; i++) w[i] += (float) (rnd.nextGaussian() * 0.05);
      tuned.graph().setInitializer(v, DenseTensor.ofFloats(v.name(), v.initializer().orElseThrow().dims(), w));
    }
    Path out = dir.resolve("merged.onnx");
    ExportReport r = MergedExport.write(tuned, out, ExportOptions.defaults());

    Model merged = ModelIO.load(out);
    assertThat(OpCensus.of(merged.graph())).isEqualTo(OpCensus.of(tuned.graph()));
    assertThat(TrainableRegistry.read(merged)).isEmpty();
    assertThat(r.fold().kept()).isEmpty();
    assertThat(r.verification().maxAbsDiff()).isLessThanOrEqualTo(1e-6);
    Model base = TinyModels.bertLike(TinyModels.Flavour.FUSED_OPSET17);
    // The export carries the trained weights, not the base's.
    assertThat(ExportVerifier.compare(base, merged, ExportVerifier.heldOutInputs(base, 3), 1e-4).maxAbsDiff())
        .isGreaterThan(1e-3);
    Tensor w = merged.graph().initializer(TrainableRegistry.read(tuned).get(0).initializer()).orElseThrow().initializer().orElseThrow();
    assertThat(w.rawData()).isEqualTo(tuned.graph().initializer(w.name()).orElseThrow().initializer().orElseThrow().rawData());
  }
}
