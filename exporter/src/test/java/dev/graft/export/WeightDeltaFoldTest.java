package dev.graft.export;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.fixtures.TinyModels;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.OpCensus;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.recipe.Recipe;
import java.nio.file.Path;
import java.util.SplittableRandom;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** VeRA, LoHa and LoKr fold into the weights: the merged export is the base graph with new weights. */
class WeightDeltaFoldTest {
  @TempDir Path dir;

  @ParameterizedTest
  @ValueSource(strings = {"vera", "loha", "lokr"})
  void mergedExportHasTheBaseCensusAndReproducesTheTunedOutputs(String method) {
    Model base = TinyModels.bertLike(TinyModels.Flavour.FUSED_OPSET17);
    Model tuned = TinyModels.bertLike(TinyModels.Flavour.FUSED_OPSET17);
    // hidden 32, FFN 64: factor 4 divides both; every linear of the tiny encoder.
    String options = method.equals("lokr") ? ", factor: 4, rank: 2" : ", rank: 4";
    Recipe.parse("passes: [{method: " + method + ", targets: \"**\"" + options + "}]", method + ".yaml").manager().run(tuned);
    SplittableRandom r = new SplittableRandom(9);
    for (TrainableRegistry.Entry e : TrainableRegistry.read(tuned)) {
      Value v = tuned.graph().initializer(e.initializer()).orElseThrow();
      Tensor t = v.initializer().orElseThrow();
      float[] x = new float[Math.toIntExact(t.numElements())];
      for (int i = 0; i < x.length; i++) x[i] = (float) (r.nextGaussian() * 0.1);
      tuned.graph().setInitializer(v, DenseTensor.ofFloats(v.name(), t.dims(), x));
    }

    ExportReport rep = MergedExport.write(tuned, dir.resolve(method + ".onnx"), ExportOptions.defaults());
    Model merged = ModelIO.load(dir.resolve(method + ".onnx"));
    assertThat(rep.verification().maxAbsDiff()).isLessThanOrEqualTo(1e-4);
    assertThat(rep.fold().kept()).isEmpty();
    assertThat(OpCensus.of(merged.graph())).isEqualTo(OpCensus.of(base.graph()));
    assertThat(TrainableRegistry.read(merged)).isEmpty();
    assertThat(merged.graph().initializers()).hasSameSizeAs(base.graph().initializers());
    var feeds = ExportVerifier.heldOutInputs(base, 3);
    assertThat(ExportVerifier.compare(base, merged, feeds, 1e-4).maxAbsDiff()).isGreaterThan(1e-3);
  }
}
