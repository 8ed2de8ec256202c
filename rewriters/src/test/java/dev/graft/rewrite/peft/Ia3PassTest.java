package dev.graft.rewrite.peft;

import static dev.graft.rewrite.peft.BottleneckAdapterPassesTest.census;
import static dev.graft.rewrite.peft.PeftFixtures.assertSameOutputs;
import static dev.graft.rewrite.peft.PeftFixtures.copy;
import static dev.graft.rewrite.peft.PeftFixtures.tensor;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.common.collect.ImmutableMap;
import dev.graft.fixtures.TinyModels;
import dev.graft.ir.DataType;
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
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.discover.FeedForwardModule;
import dev.graft.rewrite.discover.LinearModule;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class Ia3PassTest extends PeftFixtures.MiniLmSetup {
  @Test
  void onesLeaveMiniLmUnchanged() throws Exception {
    Model m = copy(miniLm);
    PassResult r = Ia3Pass.defaults().run(m);
    // Per layer: key 384, value 384, feed-forward hidden 1536.
    assertThat(r.parametersAdded()).isEqualTo(6L * (384 + 384 + 1536)).isEqualTo(13_824L);
    assertThat(r.changes()).hasSize(18).contains("ia3 layer.0.attention.key", "ia3 layer.5.ffn");
    assertThat(TrainableRegistry.parameterCount(m)).isEqualTo(13_824L);
    assertSameOutputs(m, sentences, original);
    assertSameOutputs(m, PeftFixtures.helloWorld(), PeftFixtures.lastHidden(copy(miniLm), PeftFixtures.helloWorld()));
  }

  @Test
  void randomScalesMultiplyTheKeyAndTheFeedForwardActivation() {
    Model base = copy(miniLm);
    Model m = copy(miniLm);
    new Ia3Pass(Targets.glob("layer.3.{attention.key,ffn}")).run(m);
    Verifier.verify(m);
    PeftFixtures.randomize(m, "layer.3.attention.key.ia3_l", 1.0, 1);
    PeftFixtures.randomize(m, "layer.3.ffn.ia3_l", 1.0, 2);

    // Key: the adapted projection equals the original one times l, per channel.
    LinearModule key = PeftFixtures.module(m, "layer.3.attention.key");
    LinearModule keyBefore = PeftFixtures.module(base, "layer.3.attention.key");
    Ort.expose(m.graph(), key.output(), 3);
    Ort.expose(base.graph(), keyBefore.output(), 3);
    // Feed-forward: the down projection of the adapted model equals (a ⊙ l)·W + b on its input a.
    FeedForwardModule ffn = PeftFixtures.module(m, "layer.3.ffn");
    Value a = ffn.down().input();
    Ort.expose(m.graph(), a, 3);
    Ort.expose(m.graph(), ffn.down().output(), 3);
    Map<String, Ort.Out> out = Ort.run(m, sentences);
    float[] keyOriginal = Ort.run(base, sentences).get(keyBefore.output().name()).data();

    long[] s = {2, 8, 384};
    GraphBuilder k = GraphBuilder.create("key_oracle");
    Value y = k.input("y", DataType.FLOAT, 2, 8, 384);
    k.output("z", k.op("Mul", y, k.initializer("l", tensor(m, "layer.3.attention.key.ia3_l"))));
    k.typed(k.graph().outputs().get(0), DataType.FLOAT, 2, 8, 384);
    float[] keyExpected = Ort.run(k.model(17), Map.of("y", In.floats(s, keyOriginal))).get("z").data();
    float[] keyAdapted = out.get(key.output().name()).data();
    assertThat(Ort.maxAbsDiff(keyAdapted, keyOriginal)).isGreaterThan(1e-1);
    assertThat(Ort.maxAbsDiff(keyAdapted, keyExpected)).isLessThanOrEqualTo(1e-4);

    GraphBuilder f = GraphBuilder.create("ffn_oracle");
    Value ain = f.input("a", DataType.FLOAT, 2, 8, 1536);
    Value scaled = f.op("Mul", ain, f.initializer("l", tensor(m, "layer.3.ffn.ia3_l")));
    LinearModule downBefore = PeftFixtures.module(base, "layer.3.ffn.down");
    Value w = f.initializer("w", downBefore.weight().initializer().orElseThrow());
    Value bias = f.initializer("b", downBefore.bias().orElseThrow().initializer().orElseThrow());
    f.output("z", f.op("Add", f.op("MatMul", scaled, w), bias));
    f.typed(f.graph().outputs().get(0), DataType.FLOAT, 2, 8, 384);
    float[] downExpected =
        Ort.run(f.model(17), Map.of("a", In.floats(new long[] {2, 8, 1536}, out.get(a.name()).data()))).get("z").data();
    assertThat(Ort.maxAbsDiff(out.get(ffn.down().output().name()).data(), downExpected)).isLessThanOrEqualTo(1e-4);
  }

  @Test
  void goldenOpCensusOnTheBertFixture() {
    Model m = TinyModels.bertLike(TinyModels.Flavour.FUSED_OPSET17);
    ImmutableMap<String, Integer> before = OpCensus.of(m.graph());
    PassResult r = Ia3Pass.defaults().run(m);
    Verifier.verify(m);
    // Per layer: Mul on the key's W and b, on the value's W and b, on W_down (after an Unsqueeze).
    assertThat(OpCensus.of(m.graph())).isEqualTo(census(before, "Mul", 15, "Unsqueeze", 4));
    assertThat(r.parametersAdded()).isEqualTo(2L * (32 + 32 + 64));
  }

  @Test
  void secondRunChangesNothingAndDiscoveryStillSeesTheModules() {
    Model m = WorkingModels.of(TinyModels.bertLike(TinyModels.Flavour.DECOMPOSED_OPSET11));
    List<String> names = PeftFixtures.moduleNames(m);
    PassManager pm = new PassManager(List.of(Ia3Pass.defaults()));
    assertThat(pm.run(m).get(0).changed()).isTrue();
    assertThat(PeftFixtures.moduleNames(m)).isEqualTo(names);
    int nodes = m.graph().nodeCount();
    PassResult second = pm.run(m).get(0);
    assertThat(second.changed()).isFalse();
    assertThat(second.notes()).hasSize(6).allMatch(n -> n.endsWith("already has ia3"));
    assertThat(m.graph().nodeCount()).isEqualTo(nodes);
  }

  @Test
  void dryRunAndNoMatch() {
    Model m = TinyModels.bertLike(TinyModels.Flavour.FUSED_OPSET17);
    PassResult r = Ia3Pass.defaults().dryRun(m);
    assertThat(r.changes()).hasSize(6).contains("ia3 layer.1.attention.value", "ia3 layer.0.ffn");
    assertThat(m.metadata()).doesNotContainKey(TrainableRegistry.KEY);
    assertThatThrownBy(() -> new Ia3Pass(Targets.glob("layer.*.attention.k")).run(m))
        .hasMessageContaining("ia3: target 'layer.*.attention.k' matches no linear or feed-forward module")
        .hasMessageContaining("layer.0.attention.key");
  }
}
