package dev.graft.rewrite.discover;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.fixtures.TinyDecoders;
import dev.graft.fixtures.TinyDecoders.Config;
import dev.graft.ir.DataType;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.Verifier;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.rewrite.Ort;
import dev.graft.rewrite.Ort.In;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.peft.LoraPass;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Decoder blocks are found and named the same way in the standard export and in ORT GenAI's form
 * (fp32 and 4-bit), and LoRA on every block linear starts at identity on the logits there.
 */
class DecoderDiscoveryTest {
  private static final Config C = Config.small();

  static Stream<Arguments> forms() {
    return Stream.of(
        Arguments.of("standard", TinyDecoders.standard(C)),
        Arguments.of("standard with past", TinyDecoders.standard(C.withPast(true))),
        Arguments.of("genai fp32", TinyDecoders.genAi(C, false)),
        Arguments.of("genai int4", TinyDecoders.genAi(C, true)));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("forms")
  void blocksAreNamedInBothForms(String form, Model m) {
    Map<String, Module> byName = new LinkedHashMap<>();
    for (Module mod : ModuleDiscovery.discover(m)) byName.put(mod.name(), mod);
    for (int i = 0; i < C.layers(); i++) {
      for (String p : List.of("attention.query", "attention.key", "attention.value", "attention.output",
          "mlp.gate", "mlp.up", "mlp.down")) {
        assertThat(byName).as(form).containsKey("layer." + i + "." + p);
        assertThat(byName.get("layer." + i + "." + p).layer()).hasValue(i);
      }
      for (String p : List.of("attention.norm", "mlp.norm")) {
        Module norm = byName.get("layer." + i + "." + p);
        assertThat(norm).as(form + " layer.%s.%s in %s", i, p, byName.keySet()).isInstanceOf(NormModule.class);
        assertThat(((NormModule) norm).style()).isEqualTo(NormModule.Style.RMS_NORM);
        assertThat(((NormModule) norm).features()).isEqualTo(C.hidden());
      }
    }
    assertThat(byName).containsKeys("final.norm", "lm_head");
    // The token table is the one embedding; rotary cos/sin tables are buffers, not embeddings.
    assertThat(byName.values().stream().filter(x -> x instanceof EmbeddingModule)).hasSize(1);
    LinearModule key = (LinearModule) byName.get("layer.1.attention.key");
    assertThat(key.inFeatures()).isEqualTo(C.hidden());
    assertThat(key.outFeatures()).isEqualTo((long) C.kvHeads() * C.headDim());
    LinearModule gate = (LinearModule) byName.get("layer.0.mlp.gate");
    assertThat(gate.outFeatures()).isEqualTo(C.ffn());
    assertThat(gate.node().opType()).isEqualTo(form.endsWith("int4") ? "MatMulNBits" : "MatMul");
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("forms")
  void identityLoraOnEveryBlockLinearLeavesLogitsUnchanged(String form, Model original) {
    Model adapted = copy(form);
    PassResult r =
        new LoraPass(Targets.glob("layer.*.{attention,mlp}.*"), LoraPass.Config.defaults().withRank(4)).run(adapted);
    Verifier.verify(adapted);
    assertThat(r.changes().size()).isEqualTo(C.layers() * 7);
    // Discovery still sees the blocks behind the LoRA merges.
    assertThat(ModuleDiscovery.discover(adapted).stream().map(Module::name)).contains("layer.1.attention.query", "layer.1.mlp.down", "layer.1.mlp.norm");
    Map<String, In> feeds = feeds(original);
    float[] before = Ort.run(original, feeds).get("logits").data();
    float[] after = Ort.run(adapted, feeds).get("logits").data();
    assertThat(Ort.maxAbsDiff(before, after)).as(form).isLessThanOrEqualTo(1e-5);

    // The check can fail: a non-zero B moves the logits.
    Value b = adapted.graph().valueOrThrow("layer.0.attention.value.lora_B");
    float[] noise = new float[Math.toIntExact(b.initializer().orElseThrow().numElements())];
    SplittableRandom rnd = new SplittableRandom(1);
    for (int i = 0; i < noise.length; i++) noise[i] = (float) rnd.nextGaussian();
    adapted.graph().setInitializer(b, DenseTensor.ofFloats(null, b.initializer().get().dims(), noise));
    float[] moved = Ort.run(adapted, feeds).get("logits").data();
    assertThat(Ort.maxAbsDiff(before, moved)).isGreaterThan(1e-3);
  }

  private static Model copy(String form) {
    return switch (form) {
      case "standard" -> TinyDecoders.standard(C);
      case "standard with past" -> TinyDecoders.standard(C.withPast(true));
      case "genai fp32" -> TinyDecoders.genAi(C, false);
      default -> TinyDecoders.genAi(C, true);
    };
  }

  /** A 6-token prompt with an empty KV cache where the model declares one. */
  static Map<String, In> feeds(Model m) {
    long[] ids = {3, 141, 59, 26, 5, 35};
    Map<String, In> f = new LinkedHashMap<>();
    for (Value in : m.graph().inputs()) {
      if (in.isInitializer()) continue;
      switch (in.name()) {
        case "input_ids" -> f.put("input_ids", In.longs(new long[] {1, ids.length}, ids));
        case "attention_mask" -> f.put("attention_mask", In.longs(new long[] {1, ids.length}, 1, 1, 1, 1, 1, 1));
        case "position_ids" -> f.put("position_ids", In.longs(new long[] {1, ids.length}, 0, 1, 2, 3, 4, 5));
        default -> {
          assertThat(in.dataType()).hasValue(DataType.FLOAT);
          f.put(in.name(), In.floats(new long[] {1, C.kvHeads(), 0, C.headDim()}));
        }
      }
    }
    return f;
  }
}
