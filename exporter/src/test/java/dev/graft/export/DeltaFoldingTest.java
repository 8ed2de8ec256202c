package dev.graft.export;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.analysis.OpCensus;
import dev.graft.ir.io.ModelIO;
import dev.graft.rewrite.GraftTags;
import dev.graft.rewrite.GraphPass;
import dev.graft.rewrite.PassManager;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.peft.BitFitPass;
import dev.graft.rewrite.peft.BottleneckAdapter;
import dev.graft.rewrite.peft.HoulsbyAdapterPass;
import dev.graft.rewrite.peft.Ia3Pass;
import dev.graft.rewrite.peft.LayerNormAffinePass;
import dev.graft.rewrite.peft.PrefixTuningPass;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Folding the other mergeable methods, and keeping what cannot be merged, on the real MiniLM. */
class DeltaFoldingTest {
  private static TunedMiniLm miniLm;
  @TempDir Path dir;

  @BeforeAll
  static void load() {
    miniLm = new TunedMiniLm();
  }

  private Model tuned(long seed, GraphPass... passes) {
    Model m = miniLm.base();
    new PassManager(List.of(passes)).run(m);
    TunedMiniLm.randomise(m, seed);
    return m;
  }

  @Test
  void ia3BitFitAndNestedLayerNormDeltasFoldToTheBaseCensus() {
    // BitFit and LayerNorm-affine both wrap the same betas: nested merges on one parameter.
    Model tuned =
        tuned(31, new LayerNormAffinePass(Targets.all()), new BitFitPass(Targets.all()), Ia3Pass.defaults());
    Model base = miniLm.base();
    ExportReport r = MergedExport.write(tuned, dir.resolve("m.onnx"), ExportOptions.defaults());

    Model merged = ModelIO.load(dir.resolve("m.onnx"));
    assertThat(OpCensus.of(merged.graph())).isEqualTo(OpCensus.of(base.graph()));
    assertThat(r.verification().maxAbsDiff()).isLessThanOrEqualTo(1e-4);
    assertThat(r.fold().folded()).anyMatch(s -> s.startsWith("ia3 ")).anyMatch(s -> s.startsWith("bitfit "));
    assertThat(r.fold().kept()).isEmpty();
    assertThat(TrainableRegistry.read(merged)).isEmpty();
    // Frozen names survive: the folded values sit in the base's own initializers.
    assertThat(merged.graph().initializers().stream().map(v -> v.name()).toList())
        .containsExactlyInAnyOrderElementsOf(base.graph().initializers().stream().map(v -> v.name()).toList());
    assertThat(ExportVerifier.compare(base, merged, ExportVerifier.heldOutInputs(base, 3), 1e-4).maxAbsDiff())
        .isGreaterThan(1e-2);
  }

  @Test
  void adaptersStayAsNodesAndThePrefixMlpIsEvaluatedOnce() {
    Model tuned =
        tuned(
            32,
            new HoulsbyAdapterPass(Targets.glob("layer.{0,1}.ffn"), BottleneckAdapter.Config.defaults()),
            new PrefixTuningPass(Targets.glob("layer.2.attention"), PrefixTuningPass.Config.defaults().withReparameterization(16)));
    ExportReport r = MergedExport.write(tuned, dir.resolve("m.onnx"), ExportOptions.defaults());
    Model merged = ModelIO.load(dir.resolve("m.onnx"));

    assertThat(r.verification().maxAbsDiff()).isLessThanOrEqualTo(1e-4);
    assertThat(r.fold().kept()).anyMatch(s -> s.startsWith("houlsby ") || s.contains("adapter")).anyMatch(s -> s.startsWith("prefix "));
    // The reparameterisation MLP (MatMul, Tanh, Add) is gone; its output is a constant.
    for (Node n : merged.graph().nodes()) {
      assertThat(GraftTags.role(n)).as(n.displayName()).isNotIn(java.util.Optional.of(PrefixTuningPass.REPARAM), java.util.Optional.of(PrefixTuningPass.REPARAM_OUT));
    }
    assertThat(OpCensus.of(merged.graph()).getOrDefault("Tanh", 0)).isEqualTo(OpCensus.of(miniLm.base().graph()).getOrDefault("Tanh", 0));
    assertThat(OpCensus.of(tuned.graph()).get("Tanh")).isGreaterThan(OpCensus.of(miniLm.base().graph()).getOrDefault("Tanh", 0));
  }
}
