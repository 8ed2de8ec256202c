package dev.graft.rewrite.peft;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.common.collect.ImmutableMap;
import dev.graft.fixtures.PretrainedModels;
import dev.graft.fixtures.TinyModels;
import dev.graft.fixtures.TinyModels.Flavour;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.OpCensus;
import dev.graft.ir.analysis.Verifier;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.rewrite.Ort;
import dev.graft.rewrite.Ort.In;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.discover.Module;
import dev.graft.rewrite.discover.ModuleDiscovery;
import dev.graft.rewrite.discover.NormModule;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

class LayerNormAffinePassTest {

  @Test
  void zeroDeltasLeaveMiniLmOutputsUnchanged() throws Exception {
    Model original = WorkingModels.load(PretrainedModels.miniLm());
    Model adapted = WorkingModels.load(PretrainedModels.miniLm());
    PassResult r = new LayerNormAffinePass(Targets.all()).run(adapted);
    Verifier.verify(adapted);
    assertThat(r.changes()).hasSize(13);
    assertThat(r.parametersAdded()).isEqualTo(13L * 2 * 384);
    Map<String, In> in = Ort.miniLmSentences();
    assertThat(Ort.maxAbsDiff(
            Ort.run(original, in).get("last_hidden_state").data(),
            Ort.run(adapted, in).get("last_hidden_state").data()))
        .isLessThanOrEqualTo(1e-5);
    // The graph output keeps its name although its producer now reads the merged beta.
    assertThat(adapted.graph().outputs().get(0).name()).isEqualTo("last_hidden_state");
  }

  /**
   * Random deltas compute what the original model computes with gamma * (1 + dgamma) and beta +
   * dbeta folded into its constants: the fold the exporter will do.
   */
  @ParameterizedTest
  @EnumSource(Flavour.class)
  void randomDeltasEqualTheFoldedModel(Flavour flavour) {
    Model adapted = WorkingModels.of(TinyModels.bertLike(flavour));
    new LayerNormAffinePass(Targets.glob("layer.*.*.norm")).run(adapted);
    Model folded = WorkingModels.of(TinyModels.bertLike(flavour));
    Map<String, NormModule> foldedNorms = new LinkedHashMap<>();
    for (Module m : ModuleDiscovery.discover(folded)) if (m instanceof NormModule n) foldedNorms.put(n.name(), n);

    SplittableRandom random = new SplittableRandom(11);
    Graph g = adapted.graph();
    int adaptedCount = 0;
    for (TrainableRegistry.Entry e : TrainableRegistry.read(adapted)) {
      Value delta = g.initializer(e.initializer()).orElseThrow();
      float[] d = new float[TinyModels.BERT_HIDDEN];
      for (int i = 0; i < d.length; i++) d[i] = (float) (random.nextGaussian() * 0.3);
      g.setInitializer(delta, DenseTensor.ofFloats(delta.name(), new long[] {d.length}, d));
      NormModule target = foldedNorms.get(e.module());
      Value p = e.role().equals("dgamma") ? target.gamma() : target.beta();
      float[] v = p.initializer().orElseThrow().toFloatArray();
      for (int i = 0; i < v.length; i++) v[i] = e.role().equals("dgamma") ? v[i] * (1 + d[i]) : v[i] + d[i];
      folded.graph().setInitializer(p, DenseTensor.ofFloats(p.name(), new long[] {v.length}, v));
      adaptedCount++;
    }
    assertThat(adaptedCount).isEqualTo(4 * 2);

    Map<String, In> in = new LinkedHashMap<>();
    long[] shape = {2, 5};
    in.put("input_ids", In.longs(shape, 3, 14, 15, 92, 65, 35, 89, 79, 32, 38));
    in.put("attention_mask", In.longs(shape, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0));
    in.put("token_type_ids", In.longs(shape, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1));
    float[] a = Ort.run(adapted, in).get("last_hidden_state").data();
    float[] f = Ort.run(folded, in).get("last_hidden_state").data();
    float[] o = Ort.run(TinyModels.bertLike(flavour), in).get("last_hidden_state").data();
    assertThat(Ort.maxAbsDiff(a, o)).isGreaterThan(1e-2); // the deltas do something
    assertThat(Ort.maxAbsDiff(a, f)).isLessThanOrEqualTo(1e-5);
  }

  @Test
  void goldenOpCensusAndIdempotenceOnTheFusedFixture() {
    Model m = TinyModels.bertLike(Flavour.FUSED_OPSET17);
    Map<String, Integer> before = OpCensus.of(m.graph());
    PassResult r = new LayerNormAffinePass(Targets.glob("embeddings.norm")).run(m);
    assertThat(r.parametersAdded()).isEqualTo(2L * TinyModels.BERT_HIDDEN);
    Map<String, Integer> after = OpCensus.of(m.graph());
    // Add(dgamma, 1), Mul(gamma, .), Add(beta, dbeta).
    assertThat(after.get("Add")).isEqualTo(before.get("Add") + 2);
    assertThat(after.get("Mul")).isEqualTo(before.get("Mul") + 1);
    assertThat(after.get("LayerNormalization")).isEqualTo(5);
    assertThat(new LayerNormAffinePass(Targets.glob("embeddings.norm")).run(m).changed()).isFalse();
    assertThat(TrainableRegistry.read(m)).extracting(TrainableRegistry.Entry::role).containsExactly("dgamma", "dbeta");
  }

  @Test
  void batchNormOfTheCnn() {
    Model m = TinyModels.cnn();
    PassResult r = new LayerNormAffinePass(Targets.glob("stem.conv.norm")).run(m);
    Verifier.verify(m);
    assertThat(r.parametersAdded()).isEqualTo(8);
    assertThat(OpCensus.of(m.graph())).containsEntry("BatchNormalization", 1).containsEntry("Add", 2).containsEntry("Mul", 1);
    float[] x = new float[2 * 64];
    SplittableRandom random = new SplittableRandom(5);
    for (int i = 0; i < x.length; i++) x[i] = (float) random.nextGaussian();
    Map<String, In> in = ImmutableMap.of("image", In.floats(new long[] {2, 1, 8, 8}, x));
    assertThat(Ort.maxAbsDiff(Ort.run(m, in).get("logits").data(), Ort.run(TinyModels.cnn(), in).get("logits").data()))
        .isLessThanOrEqualTo(1e-6);
  }
}
