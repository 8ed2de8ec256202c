package dev.graft.rewrite.peft;

import static dev.graft.rewrite.peft.BottleneckAdapterPassesTest.census;
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
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.Ort;
import dev.graft.rewrite.Ort.In;
import dev.graft.rewrite.PassManager;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.discover.ResidualModule;
import dev.graft.rewrite.peft.BottleneckAdapter.Form;
import dev.graft.rewrite.peft.UTuningPass.Op;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class UTuningPassTest extends PeftFixtures.MiniLmSetup {
  @Test
  void zeroInitParallelAndSequentialTunersLeaveMiniLmUnchanged() throws Exception {
    Model block = copy(miniLm);
    BottleneckAdapter.Config adapter = BottleneckAdapter.Config.defaults().withSize(8).withScale(2);
    PassResult r = new UTuningPass(Targets.all(), UTuningPass.Config.bottleneck(Op.BLOCK, Form.PARALLEL, adapter)).run(block);
    assertThat(r.changes()).hasSize(6).contains("u-tuning(block,parallel,bottleneck,r=8,relu,s=2.0) layer.5");
    assertThat(r.parametersAdded()).isEqualTo(6L * (2 * 384 * 8 + 8 + 384));
    assertThat(TrainableRegistry.parameterCount(block)).isEqualTo(r.parametersAdded());
    assertSameOutputs(block, sentences, original);
    assertSameOutputs(block, PeftFixtures.helloWorld(), PeftFixtures.lastHidden(copy(miniLm), PeftFixtures.helloWorld()));
    // The last layer's output is the graph output: it keeps its name.
    assertThat(block.graph().outputs().get(0).name()).isEqualTo("last_hidden_state");

    Model attention = copy(miniLm);
    new UTuningPass(Targets.all(), UTuningPass.Config.bottleneck(Op.ATTENTION, Form.SEQUENTIAL, adapter)).run(attention);
    assertSameOutputs(attention, sentences, original);
  }

  @Test
  void randomBlockTunerAddsScaledAdapterOfTheLayerInput() {
    Model m = copy(miniLm);
    BottleneckAdapter.Config adapter =
        BottleneckAdapter.Config.defaults().withSize(8).withScale(0.5).withInit(BottleneckAdapter.Init.RANDOM).withSeed(4);
    new UTuningPass(Targets.glob("layer.3"), UTuningPass.Config.bottleneck(Op.BLOCK, Form.PARALLEL, adapter)).run(m);
    Verifier.verify(m);
    ResidualModule attnResidual = PeftFixtures.module(m, "layer.3.attention.residual");
    Value x = attnResidual.add().input(attnResidual.skipIndex());
    Node merge = tagged(m, "u-tuning", "layer.3", "merge");
    Value y = merge.input(0);
    assertThat(y.producer().orElseThrow().displayName()).contains("layer.3/output/LayerNorm"); // after the post-norm
    for (Value v : List.of(x, y, merge.output())) Ort.expose(m.graph(), v, 3);
    Map<String, Ort.Out> out = Ort.run(m, sentences);

    String base = "layer.3.u-tuning.";
    GraphBuilder b = GraphBuilder.create("oracle");
    Value xin = b.input("x", DataType.FLOAT, 2, 8, 384);
    Value yin = b.input("y", DataType.FLOAT, 2, 8, 384);
    Value down = b.op("Add", b.op("MatMul", xin, b.initializer("wd", tensor(m, base + "down_weight"))), b.initializer("bd", tensor(m, base + "down_bias")));
    Value up = b.op("Add", b.op("MatMul", b.op("Relu", down), b.initializer("wu", tensor(m, base + "up_weight"))), b.initializer("bu", tensor(m, base + "up_bias")));
    b.output("z", b.op("Add", yin, b.op("Mul", up, b.scalar(0.5f))));
    b.typed(b.graph().outputs().get(0), DataType.FLOAT, 2, 8, 384);
    long[] s = {2, 8, 384};
    float[] expected =
        Ort.run(b.model(17), Map.of("x", In.floats(s, out.get(x.name()).data()), "y", In.floats(s, out.get(y.name()).data()))).get("z").data();
    float[] adapted = out.get(merge.output().name()).data();
    assertThat(Ort.maxAbsDiff(adapted, out.get(y.name()).data())).isGreaterThan(1e-2);
    assertThat(Ort.maxAbsDiff(adapted, expected)).isLessThanOrEqualTo(1e-4);
  }

  @Test
  void adapterPrefixAndPromptAreSpecialCases() {
    Map<String, In> in = sentences;
    // Sequential bottleneck on the feed-forward block = Pfeiffer.
    BottleneckAdapter.Config adapter = BottleneckAdapter.Config.defaults().withSize(8).withActivation(BottleneckAdapter.Activation.GELU);
    Model u = copy(miniLm);
    new UTuningPass(Targets.glob("layer.1.ffn"), UTuningPass.Config.bottleneck(Op.FFN, Form.SEQUENTIAL, adapter)).run(u);
    Model p = copy(miniLm);
    new PfeifferAdapterPass(Targets.glob("layer.1.ffn"), adapter).run(p);
    for (String role : List.of("down_weight", "down_bias", "up_weight", "up_bias")) {
      PeftFixtures.randomize(u, "layer.1.ffn.u-tuning." + role, 0.1, role.hashCode());
      PeftFixtures.randomize(p, "layer.1.ffn.pfeiffer." + role, 0.1, role.hashCode());
    }
    assertSameOutputs(u, in, PeftFixtures.lastHidden(p, in));
    assertThat(Ort.maxAbsDiff(PeftFixtures.lastHidden(u, in), original)).isGreaterThan(1e-3);

    // A prefix branch of attention = prefix tuning.
    PrefixTuningPass.Config prefix = PrefixTuningPass.Config.defaults().withLength(3).withInitStd(1.0);
    Model up = copy(miniLm);
    new UTuningPass(Targets.glob("layer.4.attention"), UTuningPass.Config.prefix(prefix)).run(up);
    Model pp = copy(miniLm);
    new PrefixTuningPass(Targets.glob("layer.4.attention"), prefix).run(pp);
    copyInto(up, "layer.4.attention.u-tuning.key", pp, "layer.4.attention.prefix.key");
    copyInto(up, "layer.4.attention.u-tuning.value", pp, "layer.4.attention.prefix.value");
    assertSameOutputs(up, in, PeftFixtures.lastHidden(pp, in));

    // A prompt before the first block = prompt tuning.
    PromptTuningPass.Config prompt = PromptTuningPass.Config.defaults().withLength(2).withInitStd(1.0);
    Model uq = copy(miniLm);
    new UTuningPass(Targets.glob("layer.0"), UTuningPass.Config.prompt(prompt)).run(uq);
    Model pq = copy(miniLm);
    new PromptTuningPass(prompt).run(pq);
    copyInto(uq, "layer.0.u-tuning", pq, "embeddings.prompt");
    assertSameOutputs(uq, in, PeftFixtures.lastHidden(pq, in));
  }

  /** Gives {@code to}'s initializer the values of {@code from}'s. */
  private static void copyInto(Model from, String fromName, Model to, String toName) {
    Tensor t = tensor(from, fromName);
    Value v = to.graph().initializer(toName).orElseThrow();
    to.graph().setInitializer(v, t.withName(toName));
  }

  @Test
  void goldenOpCensusOnTheBertFixture() {
    Model m = TinyModels.bertLike(TinyModels.Flavour.FUSED_OPSET17);
    ImmutableMap<String, Integer> before = OpCensus.of(m.graph());
    BottleneckAdapter.Config adapter = BottleneckAdapter.Config.defaults().withSize(4);
    PassResult r = new UTuningPass(Targets.all(), UTuningPass.Config.bottleneck(Op.BLOCK, Form.PARALLEL, adapter)).run(m);
    Verifier.verify(m);
    // Two layers: MatMul, Add, Relu, MatMul, Add, Mul (s), Add (merge).
    assertThat(OpCensus.of(m.graph())).isEqualTo(census(before, "MatMul", 20, "Add", 28, "Relu", 2, "Mul", 7));
    assertThat(r.parametersAdded()).isEqualTo(2L * (2 * 32 * 4 + 4 + 32));
  }

  @Test
  void secondRunChangesNothingDryRunAndErrors() {
    Model m = WorkingModels.of(TinyModels.bertLike(TinyModels.Flavour.DECOMPOSED_OPSET11));
    List<String> names = PeftFixtures.moduleNames(m);
    UTuningPass pass =
        new UTuningPass(Targets.all(), UTuningPass.Config.bottleneck(Op.BLOCK, Form.SEQUENTIAL, BottleneckAdapter.Config.defaults().withSize(4)));
    assertThat(pass.dryRun(m).changes())
        .containsExactly("u-tuning(block,sequential,bottleneck,r=4,relu) layer.0", "u-tuning(block,sequential,bottleneck,r=4,relu) layer.1");
    assertThat(m.metadata()).doesNotContainKey(TrainableRegistry.KEY);
    PassManager pm = new PassManager(List.of(pass));
    assertThat(pm.run(m).get(0).changed()).isTrue();
    assertThat(PeftFixtures.moduleNames(m)).isEqualTo(names);
    int nodes = m.graph().nodeCount();
    PassResult second = pm.run(m).get(0);
    assertThat(second.changed()).isFalse();
    assertThat(second.notes()).containsExactly("layer.0: already has u-tuning", "layer.1: already has u-tuning");
    assertThat(m.graph().nodeCount()).isEqualTo(nodes);

    assertThatThrownBy(() -> new UTuningPass(Targets.glob("layer.7"), pass.config()).run(m))
        .hasMessageContaining("u-tuning: target 'layer.7' matches no block module. The block modules are: layer.0, layer.1.");
    assertThatThrownBy(() -> new UTuningPass.Config(Op.FFN, Form.PARALLEL, UTuningPass.Tuner.PREFIX, null, PrefixTuningPass.Config.defaults(), null))
        .hasMessageContaining("prefix tuner is a parallel branch of attention");
    assertThatThrownBy(() -> new UTuningPass(Targets.glob("layer.1"), UTuningPass.Config.prompt(PromptTuningPass.Config.defaults())).run(m))
        .hasMessageContaining("a prompt joins the input of the first block only");
  }
}
