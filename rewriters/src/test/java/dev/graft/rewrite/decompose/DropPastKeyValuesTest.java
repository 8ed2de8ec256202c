package dev.graft.rewrite.decompose;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.fixtures.TinyDecoders;
import dev.graft.fixtures.TinyDecoders.Config;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.Verifier;
import dev.graft.rewrite.Ort;
import dev.graft.rewrite.Ort.In;
import dev.graft.rewrite.PassResult;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Training copies feed no past: dropping the cache inputs keeps the logits of an uncached prompt. */
class DropPastKeyValuesTest {
  private static final Config C = Config.small();
  private static final long[] IDS = {3, 141, 59, 26, 5};

  @Test
  void standardFormWithoutPastComputesTheSameLogits() {
    Model m = TinyDecoders.standard(C.withPast(true));
    PassResult r = new DropPastKeyValues().run(m);
    Verifier.verify(m);
    assertThat(r.changes()).hasSize(2 * C.layers());
    assertThat(m.graph().inputs()).extracting(Value::name).containsExactly("input_ids", "attention_mask", "position_ids");
    assertThat(m.graph().outputs()).extracting(Value::name).containsExactly("logits");
    float[] expected = Ort.run(TinyDecoders.standard(C), prompt(true)).get("logits").data();
    assertThat(Ort.maxAbsDiff(expected, Ort.run(m, prompt(true)).get("logits").data())).isLessThan(1e-5);
    assertThat(new DropPastKeyValues().run(m).changed()).isFalse();
  }

  @Test
  void genAiFormDecomposedWithoutPastMatchesOrtWithAnEmptyCache() {
    Model fused = TinyDecoders.genAi(C, true);
    Map<String, In> withCache = prompt(false);
    for (int i = 0; i < C.layers(); i++) {
      withCache.put("past_key_values." + i + ".key", In.floats(new long[] {1, C.kvHeads(), 0, C.headDim()}));
      withCache.put("past_key_values." + i + ".value", In.floats(new long[] {1, C.kvHeads(), 0, C.headDim()}));
    }
    float[] expected = Ort.run(fused, withCache).get("logits").data();
    Model training = TinyDecoders.genAi(C, true);
    new DropPastKeyValues().run(training);
    new ContribDecomposition().run(training);
    Verifier.verify(training);
    assertThat(training.graph().inputs()).extracting(Value::name).containsExactly("input_ids", "attention_mask");
    assertThat(Ort.maxAbsDiff(expected, Ort.run(training, prompt(false)).get("logits").data())).isLessThan(1e-4);
  }

  private static Map<String, In> prompt(boolean positions) {
    Map<String, In> f = new LinkedHashMap<>();
    f.put("input_ids", In.longs(new long[] {1, IDS.length}, IDS));
    f.put("attention_mask", In.longs(new long[] {1, IDS.length}, 1, 1, 1, 1, 1));
    if (positions) f.put("position_ids", In.longs(new long[] {1, IDS.length}, 0, 1, 2, 3, 4));
    return f;
  }
}
