package dev.graft.rewrite.peft;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.common.collect.ImmutableMap;
import dev.graft.fixtures.PretrainedModels;
import dev.graft.fixtures.TinyModels;
import dev.graft.ir.Attr;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.OpCensus;
import dev.graft.ir.analysis.Verifier;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.rewrite.Ort;
import dev.graft.rewrite.Ort.In;
import dev.graft.rewrite.PassManager;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.discover.LinearModule;
import dev.graft.rewrite.discover.ModuleDiscovery;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

class TaylorChannelPassTest {
  private static final List<Integer> UP_CHANNELS = List.of(5, 700, 3, 1535);
  private static final List<Integer> VALUE_CHANNELS = List.of(0, 383, 17);

  private static Model miniLm() {
    return WorkingModels.load(PretrainedModels.miniLm());
  }

  @Test
  void zeroDeltaLeavesMiniLmOutputsUnchanged() throws Exception {
    Model original = miniLm();
    Model adapted = miniLm();
    PassResult r =
        new TaylorChannelPass(
                TaylorChannelPass.Config.of(ImmutableMap.of("layer.0.ffn.up", UP_CHANNELS, "layer.3.attention.value", VALUE_CHANNELS)))
            .run(adapted);
    Verifier.verify(adapted);
    // dW is [in, k]: 384 x 4 for the up projection, 384 x 3 for the value projection.
    assertThat(r.parametersAdded()).isEqualTo(384L * 4 + 384L * 3);
    assertThat(r.changes()).containsExactlyInAnyOrder("taylor-channels(k=4) layer.0.ffn.up", "taylor-channels(k=3) layer.3.attention.value");
    assertThat(TrainableRegistry.parameterCount(adapted)).isEqualTo(r.parametersAdded());

    Map<String, In> in = Ort.miniLmSentences();
    float[] before = Ort.run(original, in).get("last_hidden_state").data();
    float[] after = Ort.run(adapted, in).get("last_hidden_state").data();
    assertThat(Ort.maxAbsDiff(before, after)).isLessThanOrEqualTo(1e-5);
  }

  /**
   * With a random dW the rewritten layer equals the folded form, W + scatter(dW), computed by ORT
   * in the original model; channels outside C are untouched, those in C move.
   */
  @Test
  void randomDeltaEqualsTheFoldedWeightAndTouchesOnlyTheChosenChannels() throws Exception {
    String name = "layer.2.ffn.up";
    Model adapted = miniLm();
    new TaylorChannelPass(TaylorChannelPass.Config.of(Map.of(name, UP_CHANNELS)).withInit(0.05, 11)).run(adapted);
    Model original = miniLm();
    Model folded = miniLm();

    // The oracle: the weight itself changed, W' = W + Gather(Concat(dW, 0), idx, axis 1), in the
    // original graph; ORT computes x·W' for the whole layer.
    LinearModule target = linear(folded, name);
    Graph fg = folded.graph();
    Value dW = fg.addInitializer("dW", adapted.graph().initializer(name + ".taylor_dW").orElseThrow().initializer().orElseThrow().withName("dW"));
    Value zero = fg.addInitializer("zero", adapted.graph().initializer(name + ".taylor_zero").orElseThrow().initializer().orElseThrow().withName("zero"));
    Value idx = fg.addInitializer("idx", adapted.graph().initializer(name + ".taylor_index").orElseThrow().initializer().orElseThrow().withName("idx"));
    GraphBuilder b = GraphBuilder.on(fg).before(target.node());
    Value full = b.op("Gather", List.of(b.op("Concat", List.of(dW, zero), Attr.of("axis", 1L)), idx), Attr.of("axis", 1L));
    Value newW = b.op("Add", target.weight(), full);
    target.node().setInput(1, newW);

    Value hAdapted = linear(adapted, name).output();
    Ort.expose(adapted.graph(), hAdapted, 3);
    Ort.expose(fg, target.output(), 3);
    Value hOriginal = linear(original, name).output();
    Ort.expose(original.graph(), hOriginal, 3);

    Map<String, In> in = Ort.miniLmSentences();
    Map<String, Ort.Out> a = Ort.run(adapted, in);
    float[] hA = a.get(hAdapted.name()).data();
    float[] hF = Ort.run(folded, in).get(target.output().name()).data();
    float[] hO = Ort.run(original, in).get(hOriginal.name()).data();
    assertThat(Ort.maxAbsDiff(hA, hF)).isLessThanOrEqualTo(1e-4);
    assertThat(Ort.maxAbsDiff(a.get("last_hidden_state").data(), Ort.run(folded, in).get("last_hidden_state").data()))
        .isLessThanOrEqualTo(1e-4);

    Set<Integer> chosen = Set.copyOf(UP_CHANNELS);
    double moved = 0;
    for (int i = 0; i < hA.length; i++) {
      int c = i % 1536;
      if (chosen.contains(c)) {
        moved = Math.max(moved, Math.abs(hA[i] - hO[i]));
      } else {
        assertThat(hA[i]).as("channel %s", c).isEqualTo(hO[i]);
      }
    }
    assertThat(moved).isGreaterThan(1e-2);
  }

  @Test
  void goldenCensusIdempotenceAndDiscoveryOnTheMlp() {
    Model m = TinyModels.mlp(2, 8, 3, 1);
    PassManager pm = new PassManager(List.of(new TaylorChannelPass(TaylorChannelPass.Config.of(Map.of("fc2", List.of(2, 0))))));
    PassResult first = pm.run(m).get(0);
    assertThat(first.parametersAdded()).isEqualTo(8 * 2);
    assertThat(OpCensus.of(m.graph()))
        .isEqualTo(ImmutableMap.of("Add", 2, "MatMul", 2, "Concat", 1, "Gather", 1, "Gemm", 1, "Relu", 1));
    assertThat(m.graph().outputs().get(0).name()).isEqualTo("logits");
    PassResult second = pm.run(m).get(0);
    assertThat(second.changed()).isFalse();
    assertThat(second.notes()).containsExactly("fc2: already has taylor-channels");
    assertThat(ModuleDiscovery.discover(m).stream().map(x -> x.name()).toList()).containsExactly("fc1", "fc2");
  }

  @Test
  void errorsNameTheModuleAndTheRange() {
    Model m = TinyModels.bertLike(TinyModels.Flavour.FUSED_OPSET17);
    assertThatThrownBy(() -> new TaylorChannelPass(TaylorChannelPass.Config.of(Map.of("layer.0.ffn.upp", List.of(1)))).run(m))
        .hasMessageContaining("taylor-channels: no linear or ungrouped conv module is named 'layer.0.ffn.upp'. Those modules are: ")
        .hasMessageContaining("layer.0.ffn.up");
    assertThatThrownBy(() -> new TaylorChannelPass(TaylorChannelPass.Config.of(Map.of("layer.0.attention.query", List.of(32)))).run(m))
        .hasMessage("taylor-channels: module 'layer.0.attention.query' has 32 output channels (0..31); channel 32 is out of range");
    assertThatThrownBy(() -> TaylorChannelPass.Config.of(Map.of("x", List.of(1, 1))))
        .hasMessage("Module 'x': channel 1 is listed twice");
    assertThatThrownBy(() -> TaylorChannelPass.Config.of(Map.of("x", List.of())))
        .hasMessageContaining("Module 'x' is given no channels");
  }

  private static LinearModule linear(Model m, String name) {
    return ModuleDiscovery.discover(m).stream()
        .filter(x -> x.name().equals(name))
        .map(x -> (LinearModule) x)
        .findFirst()
        .orElseThrow();
  }
}
