package dev.graft.rewrite.peft;

import static dev.graft.rewrite.peft.PeftFixtures.copy;
import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.analysis.OpCensus;
import dev.graft.ir.analysis.Verifier;
import dev.graft.ir.io.ModelIO;
import dev.graft.rewrite.Ort;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry;
import java.util.Map;
import org.junit.jupiter.api.Test;

class CodaPassTest extends PeftFixtures.MiniLmSetup {
  /** A CoDA'd MiniLM whose adapters and routers are random, as after training. */
  private static Model coda(double fraction, CodaPass.ExportWeights weights) {
    Model m = copy(miniLm);
    CodaPass.Config c = CodaPass.Config.defaults().withFraction(fraction).withMinTokens(1).withExportWeights(weights);
    PassResult r = new CodaPass(Targets.all(), c).run(m);
    assertThat(r.changes()).hasSize(6);
    assertThat(r.parametersAdded()).isEqualTo(6L * c.parameters(384));
    assertThat(TrainableRegistry.parameterCount(m)).isEqualTo(r.parametersAdded());
    for (int layer = 0; layer < 6; layer++) {
      String base = "layer." + layer + ".coda.";
      PeftFixtures.randomize(m, base + "up_weight", 0.05, layer);
      PeftFixtures.randomize(m, base + "router_weight", 0.2, 10 + layer);
    }
    Verifier.verify(m);
    return m;
  }

  private static java.util.List<String> unread(Model m) {
    return m.graph().initializers().stream()
        .filter(v -> !v.hasUses() && !v.isGraphOutput() && !v.isGraphInput())
        .map(dev.graft.ir.Value::name)
        .toList();
  }

  private static Model reload(Model m) {
    return ModelIO.fromBytes(ModelIO.toBytes(m), null);
  }

  @Test
  void sparseExportReproducesTheHardDenseFormAndRunsTheLayerOnKTokens() {
    // n = 8; row 0 has 4 real tokens. k = 2 selects among them; k = 6 must also pick padding,
    // which has weight 0 and so changes nothing. Both export weightings: 1 (the default, hard
    // top-k alone) and the soft top-k's λ.
    for (CodaPass.ExportWeights weights : CodaPass.ExportWeights.values())
    for (double fraction : new double[] {0.25, 0.75}) {
      Model soft = coda(fraction, weights);
      Model hard = reload(soft);
      CodaSparseForm.toHard(hard);
      Verifier.verify(hard);
      Model sparse = reload(soft);
      CodaSparseForm.apply(sparse);
      Verifier.verify(sparse);
      // The initializer census: the dense combination's constants go with it; nothing is left
      // that no node reads (the soft model has no such initializer either).
      assertThat(unread(soft)).isEmpty();
      assertThat(unread(sparse)).as("initializers the sparse export leaves unread").isEmpty();

      float[] h = PeftFixtures.lastHidden(hard, sentences);
      float[] s = PeftFixtures.lastHidden(sparse, sentences);
      float[] f = PeftFixtures.lastHidden(soft, sentences);
      assertThat(Ort.maxAbsDiff(h, s)).as("%s, fraction %s: sparse vs hard dense", weights, fraction).isLessThanOrEqualTo(1e-4);
      assertThat(Ort.maxAbsDiff(h, f)).as("the hard form is not the soft one").isGreaterThan(1e-3);
      assertThat(Ort.maxAbsDiff(h, original)).as("CoDA changed the model").isGreaterThan(1e-3);

      Map<String, Integer> census = OpCensus.of(sparse.graph());
      assertThat(census.get("TopK")).isEqualTo(6);
      // With weights 1 the soft top-k's iterations (ReduceLogSumExp each) are not in the export.
      if (weights == CodaPass.ExportWeights.ONE) assertThat(census).doesNotContainKey("ReduceLogSumExp");
      else assertThat(census.get("ReduceLogSumExp")).isEqualTo(6 * 20);
      assertThat(census.get("ScatterElements")).isEqualTo(6);
      // The feed-forward of layer 0 runs on k rows, not n.
      Node up =
          sparse.graph().nodes().stream()
              .filter(n -> n.is("MatMul") && n.name().contains("layer.0/intermediate") && n.name().endsWith("_sel"))
              .findFirst()
              .orElseThrow();
      Ort.expose(sparse.graph(), up.output(), 3);
      long[] shape = Ort.run(sparse, sentences).get(up.output().name()).shape();
      assertThat(shape).containsExactly(2, fraction == 0.25 ? 2 : 6, 1536);
      // ... and no node of the dense layer is left on all n rows.
      assertThat(sparse.graph().nodes().stream().filter(n -> n.name().contains("layer.0/intermediate/dense/MatMul")).count())
          .isEqualTo(1);
    }
  }

  @Test
  void secondRunChangesNothingAndTheSparseFormIsRefusedTwice() {
    Model m = copy(miniLm);
    new CodaPass(Targets.all(), CodaPass.Config.defaults()).run(m);
    PassResult again = new CodaPass(Targets.all(), CodaPass.Config.defaults()).run(m);
    assertThat(again.changed()).isFalse();
    CodaSparseForm.apply(m);
    org.assertj.core.api.Assertions.assertThatThrownBy(() -> CodaSparseForm.apply(m))
        .hasMessageContaining("already in the sparse");
  }

  @Test
  void targetsSelectLayersAndAMissMessageListsThem() {
    Model m = copy(miniLm);
    PassResult r = new CodaPass(Targets.glob("layer.{4,5}"), CodaPass.Config.defaults()).run(m);
    assertThat(r.changes()).hasSize(2);
    org.assertj.core.api.Assertions.assertThatThrownBy(
            () -> new CodaPass(Targets.glob("layer.9"), CodaPass.Config.defaults()).run(copy(miniLm)))
        .hasMessageContaining("The layers are: layer.0, layer.1");
  }
}
