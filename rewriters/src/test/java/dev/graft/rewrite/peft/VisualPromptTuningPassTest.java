package dev.graft.rewrite.peft;

import static dev.graft.rewrite.peft.PeftFixtures.tensor;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.graft.fixtures.TinyModels;
import dev.graft.fixtures.VisionTransformer;
import dev.graft.ir.DataType;
import dev.graft.ir.Dim;
import dev.graft.ir.Model;
import dev.graft.ir.Shape;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.Verifier;
import dev.graft.ir.io.ModelIO;
import dev.graft.rewrite.Ort;
import dev.graft.rewrite.Ort.In;
import dev.graft.rewrite.PassManager;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.discover.ModuleDiscovery;
import dev.graft.rewrite.discover.ResidualModule;
import dev.graft.rewrite.method.Methods;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Visual prompt tuning on the ViT fixture. A prompt is no identity (attention mixes it into every
 * token), so the oracle is the base ViT itself, cut open: ORT runs the base graph block by block
 * from a stream input, on the sequence with the prompt written in after the class token (deep:
 * overwritten at every block), and the prompt positions are cut out at the end.
 */
class VisualPromptTuningPassTest {
  private static final int B = 2;
  private static final int P = 3;
  private static final int LAYERS = 2;
  private static final int D = 64;
  private static final int S = 17; // class token + 16 patches
  private static byte[] base;
  private static Map<String, In> pixels;

  @BeforeAll
  static void build() {
    base = ModelIO.toBytes(VisionTransformer.build(VisionTransformer.Config.tiny().withLayers(LAYERS), 7));
    float[] x = new float[B * 28 * 28];
    SplittableRandom r = new SplittableRandom(3);
    for (int i = 0; i < x.length; i++) x[i] = (float) r.nextDouble(-1, 1);
    pixels = Map.of("pixel_values", In.floats(new long[] {B, 1, 28, 28}, x));
  }

  private static Model copy() {
    return PeftFixtures.copy(base);
  }

  /** The stream entering block {@code layer} of {@code m}. */
  private static Value blockInput(Model m, int layer) {
    ResidualModule r = PeftFixtures.module(m, "layer." + layer + ".attention.residual");
    return r.add().input(r.skipIndex());
  }

  /** The base ViT's stream entering block 0, [B, S, D]. */
  private static float[] embedded() {
    Model m = copy();
    Value h = blockInput(m, 0);
    Ort.expose(m.graph(), h, 3);
    return Ort.run(m, pixels).get(h.name()).data();
  }

  /**
   * Block {@code layer} of the base ViT (and the final norm after the last block) run by ORT on
   * {@code h}, a [B, seq, D] stream given as an input.
   */
  private static float[] runBlock(int layer, float[] h, int seq) {
    Model m = copy();
    Value in = m.graph().addInput("stream", Type.tensor(DataType.FLOAT, B, seq, D));
    Value next = layer + 1 < LAYERS ? blockInput(m, layer + 1) : m.graph().outputs().get(0);
    blockInput(m, layer).replaceAllUsesWith(in);
    m.graph().outputs().get(0).setType(Type.tensor(DataType.FLOAT, Shape.of(Dim.unknown(), Dim.unknown(), Dim.of(D))));
    if (layer + 1 < LAYERS) Ort.expose(m.graph(), next, 3);
    Map<String, In> feeds = new java.util.LinkedHashMap<>(pixels);
    feeds.put("stream", In.floats(new long[] {B, seq, D}, h));
    return Ort.run(m, feeds).get(next.name()).data();
  }

  /** Writes {@code prompt} [P, D] into positions 1..P of every row of {@code h} [B, seq, D]. */
  private static void writePrompt(float[] h, int seq, float[] prompt) {
    for (int b = 0; b < B; b++) System.arraycopy(prompt, 0, h, (b * seq + 1) * D, P * D);
  }

  /** The oracle: prompts[i] enters block i (shallow: only block 0); the prompt positions are kept. */
  private static float[] oracle(List<float[]> prompts) {
    float[] h0 = embedded();
    int seq = S + P;
    float[] h = new float[B * seq * D];
    for (int b = 0; b < B; b++) {
      System.arraycopy(h0, b * S * D, h, b * seq * D, D); // the class token
      System.arraycopy(h0, (b * S + 1) * D, h, (b * seq + 1 + P) * D, (S - 1) * D);
    }
    for (int layer = 0; layer < LAYERS; layer++) {
      if (layer < prompts.size()) writePrompt(h, seq, prompts.get(layer));
      h = runBlock(layer, h, seq);
    }
    return h;
  }

  /** Positions 1..P cut out of [B, S+P, D]. */
  private static float[] cut(float[] h) {
    int seq = S + P;
    float[] out = new float[B * S * D];
    for (int b = 0; b < B; b++) {
      System.arraycopy(h, b * seq * D, out, b * S * D, D);
      System.arraycopy(h, (b * seq + 1 + P) * D, out, (b * S + 1) * D, (S - 1) * D);
    }
    return out;
  }

  private static VisualPromptTuningPass.Config config(boolean deep, boolean keep) {
    return VisualPromptTuningPass.Config.defaults()
        .withDeep(deep)
        .withPrompt(PromptTuningPass.Config.defaults().withLength(P).withInitStd(1.0).withSeed(5).withKeepPromptPositions(keep));
  }

  @Test
  void shallowEqualsTheBaseViTRunOnClassTokenPromptAndPatches() {
    Model m = copy();
    PassResult r = new VisualPromptTuningPass(config(false, false)).run(m);
    Verifier.verify(m);
    assertThat(r.changes()).containsExactly("vpt(P=3,after=1) layer.0");
    assertThat(r.parametersAdded()).isEqualTo((long) P * D).isEqualTo(TrainableRegistry.parameterCount(m));
    Ort.Out out = Ort.run(m, pixels).get("last_hidden_state");
    assertThat(out.shape()).containsExactly(B, S, D);
    float[] expected = cut(oracle(List.of(tensor(m, "layer.0.vpt").toFloatArray())));
    assertThat(Ort.maxAbsDiff(out.data(), expected)).isLessThanOrEqualTo(1e-4);
    // The prompt matters: the output is not the base ViT's.
    assertThat(Ort.maxAbsDiff(out.data(), Ort.run(copy(), pixels).get("last_hidden_state").data())).isGreaterThan(1e-2);
  }

  @Test
  void deepReplacesThePromptAtEveryBlock() {
    Model m = copy();
    PassResult r = new VisualPromptTuningPass(config(true, false)).run(m);
    Verifier.verify(m);
    assertThat(r.changes()).containsExactlyInAnyOrder("vpt(P=3,after=1) layer.0", "vpt(P=3,after=1) layer.1");
    assertThat(TrainableRegistry.parameterCount(m)).isEqualTo((long) LAYERS * P * D);
    float[] adapted = Ort.run(m, pixels).get("last_hidden_state").data();
    float[] expected = cut(oracle(List.of(tensor(m, "layer.0.vpt").toFloatArray(), tensor(m, "layer.1.vpt").toFloatArray())));
    assertThat(Ort.maxAbsDiff(adapted, expected)).isLessThanOrEqualTo(1e-4);
    // Layer 1's prompt matters: the shallow oracle (layer 0's prompt carried on) differs.
    float[] shallow = cut(oracle(List.of(tensor(m, "layer.0.vpt").toFloatArray())));
    assertThat(Ort.maxAbsDiff(adapted, shallow)).isGreaterThan(1e-2);
  }

  @Test
  void keptPromptPositionsLeaveTheClassTokenFirst() {
    Model m = copy();
    new VisualPromptTuningPass(config(false, true)).run(m);
    Verifier.verify(m);
    Ort.Out out = Ort.run(m, pixels).get("last_hidden_state");
    assertThat(out.shape()).containsExactly(B, S + P, D);
    float[] expected = oracle(List.of(tensor(m, "layer.0.vpt").toFloatArray()));
    assertThat(Ort.maxAbsDiff(out.data(), expected)).isLessThanOrEqualTo(1e-4);
  }

  @Test
  void registeredRunsOnceAndRefusesModelsWithoutBlocks() {
    assertThat(Methods.find("vpt")).isPresent();
    Model m = copy();
    VisualPromptTuningPass pass = new VisualPromptTuningPass(VisualPromptTuningPass.Config.defaults());
    PassResult dry = pass.dryRun(m);
    assertThat(dry.changes()).containsExactly("vpt(P=10,after=1) layer.0");
    assertThat(m.metadata()).doesNotContainKey(TrainableRegistry.KEY);
    PassManager pm = new PassManager(List.of(pass));
    assertThat(pm.run(m).get(0).changed()).isTrue();
    int nodes = m.graph().nodeCount();
    PassResult second = pm.run(m).get(0);
    assertThat(second.changed()).isFalse();
    assertThat(second.notes()).containsExactly("layer.0: already has vpt");
    assertThat(m.graph().nodeCount()).isEqualTo(nodes);
    assertThat(ModuleDiscovery.discover(m).stream().map(x -> x.name()).toList())
        .isEqualTo(ModuleDiscovery.discover(copy()).stream().map(x -> x.name()).toList());
    assertThatThrownBy(() -> pass.run(TinyModels.mlp()))
        .hasMessageContaining("vpt: found no transformer block to prompt")
        .hasMessageContaining("for a CNN, use conv-lora");
  }

  @Test
  void aClassTokenAheadOfTheMaskedSequenceIsRefused() {
    Model bert = TinyModels.bertLike(TinyModels.Flavour.FUSED_OPSET17);
    VisualPromptTuningPass.Config c =
        new VisualPromptTuningPass.Config(PromptTuningPass.Config.defaults().withLength(2), false, java.util.OptionalInt.of(1));
    assertThatThrownBy(() -> new VisualPromptTuningPass(c).run(bert))
        .hasMessageContaining("the model's attention takes a mask")
        .hasMessageContaining("method prompt");
  }
}
