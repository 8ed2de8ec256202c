package dev.graft.rewrite.peft;

import static dev.graft.rewrite.peft.BottleneckAdapterPassesTest.census;
import static dev.graft.rewrite.peft.PeftFixtures.copy;
import static dev.graft.rewrite.peft.PeftFixtures.tensor;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.common.collect.ImmutableMap;
import dev.graft.fixtures.TinyModels;
import dev.graft.ir.DataType;
import dev.graft.ir.Model;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.OpCensus;
import dev.graft.ir.analysis.Verifier;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.rewrite.Ort;
import dev.graft.rewrite.Ort.In;
import dev.graft.rewrite.PassManager;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.discover.NormModule;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class PromptTuningPassTest {
  private static final int P = 2;
  private static final int H = 384;
  private static byte[] miniLm;
  private static Map<String, In> sentences;

  @BeforeAll
  static void load() throws Exception {
    miniLm = PeftFixtures.miniLmBytes();
    sentences = Ort.miniLmSentences();
  }

  /**
   * The oracle: the original MiniLM cut at its embedding output, fed the prompt and the real
   * tokens' embeddings as one longer sequence, with an ordinary attention_mask of ones for the
   * prompt. Returns [2, P+8, 384].
   */
  private static float[] oracle(float[] prompt, float[] embedded) {
    Model cut = copy(miniLm);
    NormModule norm = PeftFixtures.module(cut, "embeddings.norm");
    Value emb = cut.graph().addInput("emb", Type.tensor(DataType.FLOAT, 2, P + 8, H));
    norm.output().replaceAllUsesWith(emb);
    float[] joined = new float[2 * (P + 8) * H];
    long[] mask = new long[2 * (P + 8)];
    long[] given = sentences.get("attention_mask").longs();
    for (int b = 0; b < 2; b++) {
      System.arraycopy(prompt, 0, joined, b * (P + 8) * H, P * H);
      System.arraycopy(embedded, b * 8 * H, joined, (b * (P + 8) + P) * H, 8 * H);
      for (int i = 0; i < P; i++) mask[b * (P + 8) + i] = 1;
      System.arraycopy(given, b * 8, mask, b * (P + 8) + P, 8);
    }
    Map<String, In> in = new LinkedHashMap<>(sentences);
    in.put("attention_mask", In.longs(new long[] {2, P + 8}, mask));
    in.put("emb", In.floats(new long[] {2, P + 8, H}, joined));
    return Ort.run(cut, in).get("last_hidden_state").data();
  }

  @Test
  void outputEqualsTheOriginalRunOnPromptPlusTokens() {
    Model m = copy(miniLm);
    PassResult r = new PromptTuningPass(PromptTuningPass.Config.defaults().withLength(P).withInitStd(1.0).withSeed(2)).run(m);
    Verifier.verify(m);
    assertThat(r.parametersAdded()).isEqualTo((long) P * H);
    assertThat(TrainableRegistry.parameterCount(m)).isEqualTo((long) P * H);
    assertThat(PeftFixtures.moduleNames(m)).isEqualTo(PeftFixtures.moduleNames(copy(miniLm)));

    NormModule norm = PeftFixtures.module(m, "embeddings.norm");
    Ort.expose(m.graph(), norm.output(), 3);
    Map<String, Ort.Out> out = Ort.run(m, sentences);
    assertThat(out.get("last_hidden_state").shape()).containsExactly(2, 8, H);
    float[] adapted = out.get("last_hidden_state").data();
    float[] expected = oracle(tensor(m, "embeddings.prompt").toFloatArray(), out.get(norm.output().name()).data());
    float[] expectedTokens = new float[2 * 8 * H];
    for (int b = 0; b < 2; b++) System.arraycopy(expected, (b * (P + 8) + P) * H, expectedTokens, b * 8 * H, 8 * H);
    assertThat(Ort.maxAbsDiff(adapted, expectedTokens)).isLessThanOrEqualTo(1e-4);
    // The prompt matters: the output is not the original one.
    assertThat(Ort.maxAbsDiff(adapted, PeftFixtures.lastHidden(copy(miniLm), sentences))).isGreaterThan(1e-2);
  }

  @Test
  void keptPromptPositionsMatchTheOracleToo() {
    Model m = copy(miniLm);
    new PromptTuningPass(PromptTuningPass.Config.defaults().withLength(P).withInitStd(1.0).withKeepPromptPositions(true)).run(m);
    Verifier.verify(m);
    NormModule norm = PeftFixtures.module(m, "embeddings.norm");
    Ort.expose(m.graph(), norm.output(), 3);
    Map<String, Ort.Out> out = Ort.run(m, sentences);
    assertThat(out.get("last_hidden_state").shape()).containsExactly(2, P + 8, H);
    float[] expected = oracle(tensor(m, "embeddings.prompt").toFloatArray(), out.get(norm.output().name()).data());
    assertThat(Ort.maxAbsDiff(out.get("last_hidden_state").data(), expected)).isLessThanOrEqualTo(1e-4);
  }

  @Test
  void paddedTokensAreStillIgnored() {
    Model m = copy(miniLm);
    new PromptTuningPass(PromptTuningPass.Config.defaults().withLength(P).withInitStd(1.0)).run(m);
    float[] a = PeftFixtures.lastHidden(m, sentences);
    Map<String, In> changed = new LinkedHashMap<>(sentences);
    long[] ids = sentences.get("input_ids").longs().clone();
    for (int i = 4; i < 8; i++) ids[i] = 2088;
    changed.put("input_ids", In.longs(new long[] {2, 8}, ids));
    float[] b = PeftFixtures.lastHidden(m, changed);
    assertThat(Ort.maxAbsDiff(Arrays.copyOfRange(a, 0, 4 * H), Arrays.copyOfRange(b, 0, 4 * H))).isLessThanOrEqualTo(1e-5);
    assertThat(Ort.maxAbsDiff(Arrays.copyOfRange(a, 4 * H, 8 * H), Arrays.copyOfRange(b, 4 * H, 8 * H))).isGreaterThan(1e-3);
  }

  @Test
  void goldenOpCensusOnTheBertFixture() {
    Model m = TinyModels.bertLike(TinyModels.Flavour.FUSED_OPSET17);
    ImmutableMap<String, Integer> before = OpCensus.of(m.graph());
    PassResult r = new PromptTuningPass(PromptTuningPass.Config.defaults().withLength(4)).run(m);
    Verifier.verify(m);
    // Stream: Shape, Slice, Concat (batch shape), Expand, Concat; the one shared mask: Shape,
    // Slice, Concat, Expand, Concat; the output: Slice.
    assertThat(OpCensus.of(m.graph())).isEqualTo(census(before, "Shape", 3, "Slice", 4, "Concat", 4, "Expand", 2));
    assertThat(r.parametersAdded()).isEqualTo(4L * 32);
    assertThat(m.graph().outputs().get(0).name()).isEqualTo("last_hidden_state");
  }

  @Test
  void secondRunChangesNothingDryRunAndNoMatch() {
    Model m = WorkingModels.of(TinyModels.bertLike(TinyModels.Flavour.DECOMPOSED_OPSET11));
    PromptTuningPass pass = new PromptTuningPass(PromptTuningPass.Config.defaults());
    PassResult dry = pass.dryRun(m);
    assertThat(dry.changes()).containsExactly("prompt(P=20) embeddings");
    assertThat(dry.parametersAdded()).isEqualTo(20L * 32);
    assertThat(m.metadata()).doesNotContainKey(TrainableRegistry.KEY);
    PassManager pm = new PassManager(List.of(pass));
    assertThat(pm.run(m).get(0).changed()).isTrue();
    int nodes = m.graph().nodeCount();
    PassResult second = pm.run(m).get(0);
    assertThat(second.changed()).isFalse();
    assertThat(second.notes()).containsExactly("embeddings: already has prompt");
    assertThat(m.graph().nodeCount()).isEqualTo(nodes);
    assertThatThrownBy(() -> pass.run(TinyModels.mlp()))
        .hasMessageContaining("prompt: found no embedding output")
        .hasMessageContaining("Its modules are: fc1, fc2");
  }
}
