package dev.graft.rewrite.peft;

import static dev.graft.rewrite.peft.PeftFixtures.assertSameOutputs;
import static dev.graft.rewrite.peft.PeftFixtures.copy;
import static dev.graft.rewrite.peft.PeftFixtures.tagged;
import static dev.graft.rewrite.peft.PeftFixtures.tensor;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.common.collect.ImmutableMap;
import dev.graft.fixtures.TinyModels;
import dev.graft.ir.DataType;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
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
import dev.graft.rewrite.peft.BottleneckAdapter.Activation;
import dev.graft.rewrite.peft.BottleneckAdapter.Config;
import dev.graft.rewrite.peft.BottleneckAdapter.Init;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Houlsby, Pfeiffer and parallel adapters: one adapter builder, three placements. */
class BottleneckAdapterPassesTest extends PeftFixtures.MiniLmSetup {
  private static final ImmutableMap<String, Integer> BERT_CENSUS =
      ImmutableMap.<String, Integer>builder()
          .put("Add", 22).put("MatMul", 16).put("Reshape", 8).put("Transpose", 8)
          .put("LayerNormalization", 5).put("Mul", 5).put("Div", 4).put("Gather", 3).put("Erf", 2)
          .put("Softmax", 2).put("Unsqueeze", 2).put("Cast", 1).put("Shape", 1).put("Slice", 1).put("Sub", 1)
          .build();

  @Test
  void nearIdentityHoulsbyLeavesMiniLmUnchanged() throws Exception {
    Model m = copy(miniLm);
    PassResult r = new HoulsbyAdapterPass(Targets.all(), Config.defaults().withActivation(Activation.GELU)).run(m);
    // 6 layers x 2 adapters x (2*384*24 + 24 + 384), r = 384/16 = 24.
    assertThat(r.parametersAdded()).isEqualTo(12L * (2 * 384 * 24 + 24 + 384)).isEqualTo(226_080L);
    assertThat(r.changes()).hasSize(12).contains("houlsby(reduction=16,gelu) layer.3.attention", "houlsby(reduction=16,gelu) layer.3.ffn");
    assertThat(TrainableRegistry.parameterCount(m)).isEqualTo(226_080L);
    assertSameOutputs(m, sentences, original);
    assertSameOutputs(m, PeftFixtures.helloWorld(), PeftFixtures.lastHidden(copy(miniLm), PeftFixtures.helloWorld()));
  }

  @Test
  void nearIdentityPfeifferAndParallelLeaveMiniLmUnchanged() {
    Model p = copy(miniLm);
    PassResult rp = new PfeifferAdapterPass(Targets.all(), Config.defaults().withSize(32)).run(p);
    assertThat(rp.parametersAdded()).isEqualTo(6L * (2 * 384 * 32 + 32 + 384));
    assertSameOutputs(p, sentences, original);

    Model q = copy(miniLm);
    PassResult rq = new ParallelAdapterPass(Targets.all(), Config.defaults().withSize(8).withScale(4)).run(q);
    assertThat(rq.parametersAdded()).isEqualTo(12L * (2 * 384 * 8 + 8 + 384)).isEqualTo(78_432L);
    assertSameOutputs(q, sentences, original);
  }

  @Test
  void randomHoulsbyAddsUpGeluDownOfItsInput() {
    Model m = copy(miniLm);
    Config cfg = Config.defaults().withSize(16).withActivation(Activation.GELU).withInit(Init.RANDOM).withSeed(5);
    new HoulsbyAdapterPass(Targets.glob("layer.2.ffn"), cfg).run(m);
    Verifier.verify(m);
    Node merge = tagged(m, "houlsby", "layer.2.ffn", "merge");
    Value y = merge.input(0);
    Ort.expose(m.graph(), y, 3);
    Ort.expose(m.graph(), merge.output(), 3);
    Map<String, Ort.Out> out = Ort.run(m, sentences);
    float[] yv = out.get(y.name()).data();
    float[] adapted = out.get(merge.output().name()).data();

    // The oracle: y + up(Gelu(down(y))) with ONNX's own Gelu op (opset 20), not the Erf form.
    String base = "layer.2.ffn.houlsby.";
    GraphBuilder b = GraphBuilder.create("oracle");
    Value x = b.input("y", DataType.FLOAT, 2, 8, 384);
    Value down = b.op("Add", b.op("MatMul", x, b.initializer("wd", tensor(m, base + "down_weight"))), b.initializer("bd", tensor(m, base + "down_bias")));
    Value up = b.op("Add", b.op("MatMul", b.op("Gelu", down), b.initializer("wu", tensor(m, base + "up_weight"))), b.initializer("bu", tensor(m, base + "up_bias")));
    b.output("z", b.op("Add", x, up));
    b.typed(b.graph().outputs().get(0), DataType.FLOAT, 2, 8, 384);
    float[] expected = Ort.run(b.model(20), Map.of("y", In.floats(new long[] {2, 8, 384}, yv))).get("z").data();

    assertThat(Ort.maxAbsDiff(adapted, yv)).isGreaterThan(1e-2); // the adapter really acts
    assertThat(Ort.maxAbsDiff(adapted, expected)).isLessThanOrEqualTo(1e-4);
  }

  @Test
  void randomParallelAdapterAddsScaledUpReluDownOfTheBlockInput() {
    Model m = copy(miniLm);
    Config cfg = Config.defaults().withSize(8).withScale(0.5).withInit(Init.RANDOM).withSeed(9);
    new ParallelAdapterPass(Targets.glob("layer.1.attention"), cfg).run(m);
    Verifier.verify(m);
    Node merge = tagged(m, "parallel-adapter", "layer.1.attention", "merge");
    Value x = PeftFixtures.<dev.graft.rewrite.discover.AttentionModule>module(m, "layer.1.attention").query().input();
    Value y = merge.input(0);
    Ort.expose(m.graph(), x, 3);
    Ort.expose(m.graph(), y, 3);
    Ort.expose(m.graph(), merge.output(), 3);
    Map<String, Ort.Out> out = Ort.run(m, sentences);

    String base = "layer.1.attention.parallel-adapter.";
    GraphBuilder b = GraphBuilder.create("oracle");
    Value xin = b.input("x", DataType.FLOAT, 2, 8, 384);
    Value yin = b.input("y", DataType.FLOAT, 2, 8, 384);
    Value down = b.op("Add", b.op("MatMul", xin, b.initializer("wd", tensor(m, base + "down_weight"))), b.initializer("bd", tensor(m, base + "down_bias")));
    Value up = b.op("Add", b.op("MatMul", b.op("Relu", down), b.initializer("wu", tensor(m, base + "up_weight"))), b.initializer("bu", tensor(m, base + "up_bias")));
    b.output("z", b.op("Add", yin, b.op("Mul", up, b.scalar(0.5f))));
    b.typed(b.graph().outputs().get(0), DataType.FLOAT, 2, 8, 384);
    long[] s = {2, 8, 384};
    float[] expected =
        Ort.run(b.model(17), Map.of("x", In.floats(s, out.get(x.name()).data()), "y", In.floats(s, out.get(y.name()).data())))
            .get("z").data();
    float[] adapted = out.get(merge.output().name()).data();
    assertThat(Ort.maxAbsDiff(adapted, out.get(y.name()).data())).isGreaterThan(1e-2);
    assertThat(Ort.maxAbsDiff(adapted, expected)).isLessThanOrEqualTo(1e-4);
  }

  @Test
  void goldenOpCensusOnTheBertFixture() {
    Model h = TinyModels.bertLike(TinyModels.Flavour.FUSED_OPSET17);
    assertThat(OpCensus.of(h.graph())).isEqualTo(BERT_CENSUS);
    new HoulsbyAdapterPass(Targets.all(), Config.defaults().withSize(4)).run(h);
    Verifier.verify(h);
    // 4 adapters: MatMul, Add (bias), Relu, MatMul, Add (bias), Add (merge).
    assertThat(OpCensus.of(h.graph()))
        .isEqualTo(census(BERT_CENSUS, "Add", 34, "MatMul", 24, "Relu", 4));

    Model p = TinyModels.bertLike(TinyModels.Flavour.FUSED_OPSET17);
    new PfeifferAdapterPass(Targets.all(), Config.defaults().withSize(4).withActivation(Activation.GELU)).run(p);
    Verifier.verify(p);
    // 2 adapters, GELU as Div, Erf, Add, Mul, Mul.
    assertThat(OpCensus.of(p.graph()))
        .isEqualTo(census(BERT_CENSUS, "Add", 30, "MatMul", 20, "Mul", 9, "Div", 6, "Erf", 4));

    Model q = TinyModels.bertLike(TinyModels.Flavour.FUSED_OPSET17);
    PassResult r = new ParallelAdapterPass(Targets.glob("layer.*.ffn"), Config.defaults().withSize(4)).run(q);
    Verifier.verify(q);
    assertThat(OpCensus.of(q.graph())).isEqualTo(census(BERT_CENSUS, "Add", 28, "MatMul", 20, "Mul", 7, "Relu", 2));
    assertThat(r.parametersAdded()).isEqualTo(2L * (2 * 32 * 4 + 4 + 32));
  }

  @Test
  void secondRunChangesNothingAndDiscoveryStillSeesTheModules() {
    Model m = WorkingModels.of(TinyModels.bertLike(TinyModels.Flavour.DECOMPOSED_OPSET11));
    List<String> names = PeftFixtures.moduleNames(m);
    PassManager pm =
        new PassManager(
            List.of(
                new HoulsbyAdapterPass(Targets.all(), Config.defaults().withSize(4)),
                new PfeifferAdapterPass(Targets.all(), Config.defaults().withSize(4)),
                new ParallelAdapterPass(Targets.all(), Config.defaults().withSize(4))));
    assertThat(pm.run(m)).allMatch(PassResult::changed);
    assertThat(PeftFixtures.moduleNames(m)).isEqualTo(names);
    int nodes = m.graph().nodeCount();
    String registry = m.metadata().get(TrainableRegistry.KEY);
    List<PassResult> second = pm.run(m);
    assertThat(second).noneMatch(PassResult::changed);
    assertThat(second.get(0).notes()).hasSize(4).allMatch(n -> n.endsWith("already has houlsby"));
    assertThat(second.get(1).summary()).isEqualTo("pfeiffer: no change (2 targets already done)");
    assertThat(m.graph().nodeCount()).isEqualTo(nodes);
    assertThat(m.metadata().get(TrainableRegistry.KEY)).isEqualTo(registry);
  }

  @Test
  void dryRunListsTargetsAndChangesNothing() {
    Model m = TinyModels.bertLike(TinyModels.Flavour.FUSED_OPSET17);
    PassResult r = new HoulsbyAdapterPass(Targets.all().layers(1, 1), Config.defaults().withSize(4)).dryRun(m);
    assertThat(r.dryRun()).isTrue();
    assertThat(r.changes()).containsExactlyInAnyOrder("houlsby(r=4,relu) layer.1.attention", "houlsby(r=4,relu) layer.1.ffn");
    assertThat(r.parametersAdded()).isEqualTo(2L * (2 * 32 * 4 + 4 + 32));
    assertThat(OpCensus.of(m.graph())).isEqualTo(BERT_CENSUS);
    assertThat(m.metadata()).doesNotContainKey(TrainableRegistry.KEY);
  }

  @Test
  void aTargetThatMatchesNothingListsTheModules() {
    Model m = TinyModels.bertLike(TinyModels.Flavour.FUSED_OPSET17);
    assertThatThrownBy(() -> new PfeifferAdapterPass(Targets.glob("layer.*.attention"), Config.defaults()).run(m))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("pfeiffer: target 'layer.*.attention' matches no feed-forward module")
        .hasMessageContaining("The feed-forward modules are: layer.0.ffn, layer.1.ffn");
    assertThatThrownBy(() -> new HoulsbyAdapterPass(Targets.all(), Config.defaults().withReductionFactor(64)).run(m))
        .hasMessageContaining("reduction factor 64 leaves no bottleneck for width 32");
  }

  /** {@code base} with some counts replaced. */
  static ImmutableMap<String, Integer> census(Map<String, Integer> base, Object... keyValues) {
    Map<String, Integer> m = new java.util.HashMap<>(base);
    for (int i = 0; i < keyValues.length; i += 2) m.put((String) keyValues[i], (Integer) keyValues[i + 1]);
    return ImmutableMap.copyOf(m);
  }
}
