package dev.graft.rewrite.peft;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.graft.fixtures.TinyModels;
import dev.graft.fixtures.TinyModels.Flavour;
import dev.graft.ir.Model;
import dev.graft.ir.analysis.Verifier;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.rewrite.Ort;
import dev.graft.rewrite.Ort.In;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.discover.ModuleDiscovery;
import dev.graft.rewrite.peft.ClassificationHeadPass.Config;
import dev.graft.rewrite.peft.ClassificationHeadPass.Pooling;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.api.Test;

class ClassificationHeadPassTest {
  private static final int D = TinyModels.BERT_HIDDEN;
  private static final int C = 3;
  private static final long[] MASK = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0};

  private static Map<String, In> inputs() {
    Map<String, In> in = new LinkedHashMap<>();
    long[] shape = {2, 5};
    in.put("input_ids", In.longs(shape, 3, 14, 15, 92, 65, 35, 89, 79, 32, 38));
    in.put("attention_mask", In.longs(shape, MASK));
    in.put("token_type_ids", In.longs(shape, new long[10]));
    return in;
  }

  /** Logits from ORT equal pooling of ORT's own hidden states followed by W and b. */
  @ParameterizedTest
  @EnumSource(Pooling.class)
  void logitsArePooledHiddenStatesTimesW(Pooling pooling) {
    Model m = WorkingModels.of(TinyModels.bertLike(Flavour.DECOMPOSED_OPSET11));
    PassResult r = new ClassificationHeadPass(Config.of(C, pooling).withSeed(4)).run(m);
    Verifier.verify(m);
    assertThat(r.parametersAdded()).isEqualTo((long) D * C + C);
    assertThat(TrainableRegistry.parameterCount(m)).isEqualTo((long) D * C + C);
    // Give the bias values so it is checked too.
    float[] bias = {0.5f, -0.25f, 1f};
    m.graph().setInitializer(m.graph().initializer("head.bias").orElseThrow(),
        dev.graft.ir.tensor.DenseTensor.ofFloats("head.bias", new long[] {C}, bias));
    Map<String, Ort.Out> out = Ort.run(m, inputs());
    Ort.Out logits = out.get("logits");
    assertThat(logits.shape()).containsExactly(2, C);
    float[] h = out.get("last_hidden_state").data();
    float[] w = m.graph().initializer("head.weight").orElseThrow().initializer().orElseThrow().toFloatArray();
    float[] expected = new float[2 * C];
    for (int b = 0; b < 2; b++) {
      double[] pooled = new double[D];
      double count = 0;
      for (int s = 0; s < 5; s++) {
        boolean on = MASK[b * 5 + s] == 1;
        if (pooling == Pooling.FIRST && s > 0) continue;
        if (pooling != Pooling.FIRST && !on) continue;
        count++;
        for (int k = 0; k < D; k++) {
          double v = h[(b * 5 + s) * D + k];
          pooled[k] = pooling == Pooling.MAX ? (count == 1 ? v : Math.max(pooled[k], v)) : pooled[k] + v;
        }
      }
      for (int k = 0; k < D; k++) if (pooling == Pooling.MEAN) pooled[k] /= count;
      for (int c = 0; c < C; c++) {
        double z = bias[c];
        for (int k = 0; k < D; k++) z += pooled[k] * w[k * C + c];
        expected[b * C + c] = (float) z;
      }
    }
    assertThat(Ort.maxAbsDiff(logits.data(), expected)).isLessThanOrEqualTo(1e-4);
    // Idempotent, and discovery does not mistake the head for a model linear.
    assertThat(new ClassificationHeadPass(Config.of(C, pooling)).run(m).changed()).isFalse();
    assertThat(ModuleDiscovery.discover(m).stream().filter(x -> x.name().contains("head"))).isEmpty();
  }

  @Test
  void fusedFlavourAtOpset17AndDroppingTheHiddenOutput() {
    Model m = TinyModels.bertLike(Flavour.FUSED_OPSET17);
    new ClassificationHeadPass(Config.of(C, Pooling.MEAN).withKeepHiddenOutput(false)).run(m);
    Map<String, Ort.Out> out = Ort.run(m, inputs());
    assertThat(out.keySet()).containsExactly("logits");
    assertThat(out.get("logits").shape()).containsExactly(2, C);
  }

  @Test
  void aMissingMaskInputIsExplained() {
    Model m = TinyModels.bertLike(Flavour.FUSED_OPSET17);
    Config c = new Config(C, Pooling.MEAN, "", "mask", true, 0);
    assertThatThrownBy(() -> new ClassificationHeadPass(c).run(m))
        .hasMessageContaining("attention mask input 'mask'")
        .hasMessageContaining("attention_mask");
  }
}
