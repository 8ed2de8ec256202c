package dev.graft.rewrite.decompose;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.fixtures.TinyDecoders;
import dev.graft.fixtures.TinyDecoders.Config;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.analysis.Verifier;
import dev.graft.rewrite.Ort;
import dev.graft.rewrite.Ort.In;
import dev.graft.rewrite.Ort.Out;
import dev.graft.rewrite.PassResult;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The standard-op rewrite of GenAI's contrib ops computes what ORT's own kernels compute: same
 * logits and presents for a prompt and for a decoding step with a KV cache, in fp32 and int4.
 */
class ContribDecompositionTest {
  private static final Config C = Config.small();

  @ParameterizedTest(name = "int4 {0}")
  @ValueSource(booleans = {false, true})
  void decomposedGraphMatchesOrtKernels(boolean int4) {
    Model fused = TinyDecoders.genAi(C, int4);
    Model plain = TinyDecoders.genAi(C, int4);
    PassResult r = new ContribDecomposition().run(plain);
    Verifier.verify(plain);
    assertThat(r.notes()).isEmpty();
    assertThat(r.changes().count("decompose-contrib GroupQueryAttention")).isEqualTo(C.layers());
    assertThat(r.changes().count("decompose-contrib MatMulNBits")).isEqualTo(int4 ? C.layers() * 7 + 1 : 0);
    for (Node n : plain.graph().nodes()) {
      assertThat(n.domain()).as(n.name()).isEmpty();
      assertThat(n.opType()).isNotEqualTo("SimplifiedLayerNormalization");
    }
    assertThat(new ContribDecomposition().run(plain).changed()).isFalse();

    // A prompt with an empty cache.
    long[] ids = {3, 141, 59, 26, 5};
    Map<String, In> prompt = feeds(ids, 0, null);
    Map<String, Out> a = Ort.run(fused, prompt);
    Map<String, Out> b = Ort.run(plain, prompt);
    assertThat(b.keySet()).isEqualTo(a.keySet());
    for (String name : a.keySet()) {
      assertThat(Ort.maxAbsDiff(a.get(name).data(), b.get(name).data())).as(name).isLessThan(1e-4);
    }
    // One decoding step with that cache: positions and the causal offset come from the past.
    Map<String, In> step = feeds(new long[] {77}, ids.length, a);
    Map<String, Out> c = Ort.run(fused, step);
    Map<String, Out> d = Ort.run(plain, step);
    for (String name : c.keySet()) {
      assertThat(Ort.maxAbsDiff(c.get(name).data(), d.get(name).data())).as("step " + name).isLessThan(1e-4);
    }
    assertThat(c.get("present.0.key").shape()[2]).isEqualTo(ids.length + 1);
  }

  static Map<String, In> feeds(long[] ids, int past, Map<String, Out> presents) {
    Map<String, In> f = new LinkedHashMap<>();
    f.put("input_ids", In.longs(new long[] {1, ids.length}, ids));
    long[] mask = new long[past + ids.length];
    java.util.Arrays.fill(mask, 1);
    f.put("attention_mask", In.longs(new long[] {1, mask.length}, mask));
    for (int i = 0; i < C.layers(); i++) {
      for (String kv : new String[] {"key", "value"}) {
        if (presents == null) {
          f.put("past_key_values." + i + "." + kv, In.floats(new long[] {1, C.kvHeads(), 0, C.headDim()}));
        } else {
          Out o = presents.get("present." + i + "." + kv);
          f.put("past_key_values." + i + "." + kv, In.floats(o.shape(), o.data()));
        }
      }
    }
    return f;
  }
}
