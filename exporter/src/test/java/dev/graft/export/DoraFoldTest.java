package dev.graft.export;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.fixtures.TinyModels;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.OpCensus;
import dev.graft.ir.io.ModelIO;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.peft.DoraPass;
import dev.graft.rewrite.recipe.Recipe;
import java.nio.file.Path;
import java.util.Set;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** DoRA folds into the weights it renormalises: the merged export is the base's graph with new W. */
class DoraFoldTest {
  @TempDir Path dir;

  @Test
  void mergedMiniLmHasTheBaseCensusAndReproducesTheTunedOutputs() {
    TunedMiniLm miniLm = new TunedMiniLm();
    Model base = miniLm.base();
    Model tuned = miniLm.base();
    Recipe.parse("passes: [{method: dora, targets: \"layer.*.attention.{query,value}\"}]", "dora.yaml").manager().run(tuned);
    TunedMiniLm.randomise(tuned, 17);

    ExportReport r = MergedExport.write(tuned, dir.resolve("m.onnx"), ExportOptions.defaults());
    Model merged = ModelIO.load(dir.resolve("m.onnx"));

    assertThat(r.verification().maxAbsDiff()).isLessThanOrEqualTo(1e-4);
    assertThat(r.fold().kept()).isEmpty();
    assertThat(OpCensus.of(merged.graph())).isEqualTo(OpCensus.of(base.graph()));
    assertThat(TrainableRegistry.read(merged)).isEmpty();
    // The weights keep their names: the folded W' replaced W in place.
    Set<String> names = base.graph().initializers().stream().map(Value::name).collect(Collectors.toSet());
    assertThat(merged.graph().initializers().stream().map(Value::name).collect(Collectors.toSet())).isEqualTo(names);
    // And the merged model is not the base: the update is in the weights.
    var feeds = ExportVerifier.heldOutInputs(base, 3);
    assertThat(ExportVerifier.compare(base, merged, feeds, 1e-4).maxAbsDiff()).isGreaterThan(1e-3);
  }

  @Test
  void gemmWithTransposedWeightFolds() {
    Model tuned = TinyModels.mlp();
    new DoraPass(Targets.all(), new DoraPass.Config(2, 2, 1)).run(tuned);
    TunedMiniLm.randomise(tuned, 5);
    ExportReport r = MergedExport.write(tuned, dir.resolve("mlp.onnx"), ExportOptions.defaults());
    assertThat(r.verification().maxAbsDiff()).isLessThanOrEqualTo(1e-5);
    assertThat(OpCensus.of(ModelIO.load(dir.resolve("mlp.onnx")).graph())).isEqualTo(OpCensus.of(TinyModels.mlp().graph()));
  }
}
