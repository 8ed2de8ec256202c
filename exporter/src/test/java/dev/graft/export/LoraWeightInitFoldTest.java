package dev.graft.export;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.fixtures.TinyModels;
import dev.graft.ir.Model;
import dev.graft.ir.analysis.OpCensus;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.peft.LoraPass;
import dev.graft.rewrite.recipe.Recipe;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * LoRA initialised by PiSSA or OLoRA folds back like any LoRA: the merged weight is the residual
 * plus s·A·B. Graft's adapter files replay the init on the base, so they rebuild the tuned model;
 * PEFT's files are not written for it.
 */
class LoraWeightInitFoldTest {
  @TempDir Path dir;

  @Test
  void pissaOnMiniLmMergesAndItsAdapterReplaysOnTheBase() {
    TunedMiniLm miniLm = new TunedMiniLm();
    Model base = miniLm.base();
    Model tuned = miniLm.base();
    Recipe.parse("passes: [{method: lora, targets: \"layer.*.attention.{query,value}\", init: pissa}]", "pissa.yaml")
        .manager().run(tuned);
    TunedMiniLm.randomise(tuned, 23);

    ExportReport r = MergedExport.write(tuned, dir.resolve("m.onnx"), ExportOptions.defaults());
    assertThat(r.verification().maxAbsDiff()).isLessThanOrEqualTo(1e-4);
    assertThat(OpCensus.of(ModelIO.load(dir.resolve("m.onnx")).graph())).isEqualTo(OpCensus.of(base.graph()));

    AdapterExport.AdapterReport a = AdapterExport.write(tuned, miniLm.path, dir.resolve("adapter"));
    assertThat(a.applied().maxAbsDiff()).isLessThanOrEqualTo(1e-4);
    // (a.applied() compares the tuned model with the adapter applied to the base, on ORT.)
    assertThat(a.files()).doesNotContain(AdapterExport.PEFT_DIR);
  }

  @Test
  void oloraOnGemmWithTransposedWeightIsTheIdentityAndFolds() {
    Model base = TinyModels.mlp();
    Model tuned = TinyModels.mlp();
    new LoraPass(Targets.all(), LoraPass.Config.defaults().withRank(2).withInit(LoraPass.Init.OLORA)).run(tuned);
    Map<String, Tensor> feeds = ExportVerifier.heldOutInputs(base, 3);
    assertThat(ExportVerifier.compare(base, tuned, feeds, 1e-5).maxAbsDiff()).isLessThanOrEqualTo(1e-5);
    TunedMiniLm.randomise(tuned, 5);
    ExportReport r = MergedExport.write(tuned, dir.resolve("mlp.onnx"), ExportOptions.defaults());
    assertThat(r.verification().maxAbsDiff()).isLessThanOrEqualTo(1e-5);
    assertThat(OpCensus.of(ModelIO.load(dir.resolve("mlp.onnx")).graph())).isEqualTo(OpCensus.of(base.graph()));
  }
}
