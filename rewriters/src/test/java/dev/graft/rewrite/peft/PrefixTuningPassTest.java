package dev.graft.rewrite.peft;

import static dev.graft.rewrite.peft.BottleneckAdapterPassesTest.census;
import static dev.graft.rewrite.peft.PeftFixtures.copy;
import static dev.graft.rewrite.peft.PeftFixtures.tagged;
import static dev.graft.rewrite.peft.PeftFixtures.tensor;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.common.collect.ImmutableMap;
import dev.graft.fixtures.TinyModels;
import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.OpCensus;
import dev.graft.ir.analysis.Verifier;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.rewrite.GraftTags;
import dev.graft.rewrite.Ort;
import dev.graft.rewrite.Ort.In;
import dev.graft.rewrite.PassManager;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.discover.AttentionModule;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class PrefixTuningPassTest extends PeftFixtures.MiniLmSetup {
  private static final int L = 3;

  @Test
  void contextEqualsAttentionOverPrefixAndTokensComputedApart() {
    Model m = copy(miniLm);
    PassResult r = new PrefixTuningPass(Targets.all(), PrefixTuningPass.Config.defaults().withLength(L).withInitStd(1.0).withSeed(3)).run(m);
    Verifier.verify(m);
    assertThat(r.parametersAdded()).isEqualTo(6L * 2 * L * 384);
    assertThat(TrainableRegistry.parameterCount(m)).isEqualTo(6L * 2 * L * 384);
    // Discovery still finds every attention block through the merges.
    assertThat(PeftFixtures.moduleNames(m)).isEqualTo(PeftFixtures.moduleNames(copy(miniLm)));

    AttentionModule a = PeftFixtures.module(m, "layer.2.attention");
    Node kMerge = a.scoreMatMul().input(1).producer().orElseThrow();
    Node vMerge = a.contextMatMul().input(1).producer().orElseThrow();
    assertThat(GraftTags.isMerge(kMerge) && GraftTags.isMerge(vMerge)).isTrue();
    Node add = a.maskAdd();
    Value mask = GraftTags.origin(add.input(1));
    Value q = a.scoreMatMul().input(0);
    Value kT = kMerge.input(0);
    Value v = vMerge.input(0);
    Value ctx = a.contextMatMul().output();
    for (Value x : List.of(q, kT, v, ctx)) Ort.expose(m.graph(), x, 4);
    Ort.expose(m.graph(), mask, 4);
    Map<String, Ort.Out> out = Ort.run(m, sentences);

    // The oracle: attention with the prefix placed first, batch copies made with Tile, the mask
    // padded with zeros in front; softmax(q·K/√d + mask)·V.
    GraphBuilder b = GraphBuilder.create("attention_oracle");
    Value qi = b.input("q", DataType.FLOAT, 2, 12, 8, 32);
    Value ki = b.input("kT", DataType.FLOAT, 2, 12, 32, 8);
    Value vi = b.input("v", DataType.FLOAT, 2, 12, 8, 32);
    Value mi = b.input("mask", DataType.FLOAT, 2, 1, 1, 8);
    Value heads = b.int64s(1, L, 12, 32);
    Value reps = b.int64s(2, 1, 1, 1);
    Value pk = b.op("Tile", b.op("Transpose", List.of(b.op("Reshape", b.initializer("pk", tensor(m, "layer.2.attention.prefix.key")), heads)), Attr.ints("perm", 0, 2, 3, 1)), reps);
    Value pv = b.op("Tile", b.op("Transpose", List.of(b.op("Reshape", b.initializer("pv", tensor(m, "layer.2.attention.prefix.value")), heads)), Attr.ints("perm", 0, 2, 1, 3)), reps);
    Value keys = b.op("Concat", List.of(pk, ki), Attr.of("axis", 3L));
    Value values = b.op("Concat", List.of(pv, vi), Attr.of("axis", 2L));
    Value zeros = b.constant(DenseTensor.ofFloats(null, new long[] {2, 1, 1, L}, new float[2 * L]));
    Value fullMask = b.op("Concat", List.of(zeros, mi), Attr.of("axis", 3L));
    Value scores = b.op("Add", b.op("Div", b.op("MatMul", qi, keys), b.scalar((float) Math.sqrt(32))), fullMask);
    b.output("ctx", b.op("MatMul", b.op("Softmax", List.of(scores), Attr.of("axis", -1L)), values));
    b.typed(b.graph().outputs().get(0), DataType.FLOAT, 2, 12, 8, 32);
    Map<String, In> feeds = new LinkedHashMap<>();
    feeds.put("q", In.floats(new long[] {2, 12, 8, 32}, out.get(q.name()).data()));
    feeds.put("kT", In.floats(new long[] {2, 12, 32, 8}, out.get(kT.name()).data()));
    feeds.put("v", In.floats(new long[] {2, 12, 8, 32}, out.get(v.name()).data()));
    feeds.put("mask", In.floats(new long[] {2, 1, 1, 8}, out.get(mask.name()).data()));
    float[] expected = Ort.run(b.model(17), feeds).get("ctx").data();
    assertThat(Ort.maxAbsDiff(out.get(ctx.name()).data(), expected)).isLessThanOrEqualTo(1e-4);
    // And the prefix matters.
    assertThat(Ort.maxAbsDiff(out.get("last_hidden_state").data(), original)).isGreaterThan(1e-2);
  }

  @Test
  void paddedTokensAreStillIgnored() throws Exception {
    Model m = copy(miniLm);
    new PrefixTuningPass(Targets.all(), PrefixTuningPass.Config.defaults().withLength(L).withInitStd(1.0)).run(m);
    float[] a = PeftFixtures.lastHidden(m, sentences);
    // Sentence 0 has 4 real tokens and 4 pads; change what stands at the padded positions.
    Map<String, In> changed = new LinkedHashMap<>(sentences);
    long[] ids = sentences.get("input_ids").longs().clone();
    for (int i = 4; i < 8; i++) ids[i] = 2088;
    changed.put("input_ids", In.longs(new long[] {2, 8}, ids));
    float[] b = PeftFixtures.lastHidden(m, changed);
    float[] realA = java.util.Arrays.copyOfRange(a, 0, 4 * 384);
    float[] realB = java.util.Arrays.copyOfRange(b, 0, 4 * 384);
    assertThat(Ort.maxAbsDiff(realA, realB)).isLessThanOrEqualTo(1e-5);
    // ...while the padded positions' own outputs did change, so the ids really reached the model.
    assertThat(Ort.maxAbsDiff(java.util.Arrays.copyOfRange(a, 4 * 384, 8 * 384), java.util.Arrays.copyOfRange(b, 4 * 384, 8 * 384)))
        .isGreaterThan(1e-3);
  }

  @Test
  void reparameterisationMlpMakesThePrefixAndIsMarkedTrainingOnly() {
    Model m = copy(miniLm);
    PrefixTuningPass.Config cfg = PrefixTuningPass.Config.defaults().withLength(L).withReparameterization(16).withInitStd(1.0);
    PassResult r = new PrefixTuningPass(Targets.glob("layer.0.attention"), cfg).run(m);
    Verifier.verify(m);
    assertThat(r.parametersAdded()).isEqualTo(L * 384 + 384 * 16 + 16 + 16 * 768 + 768);
    assertThat(TrainableRegistry.read(m))
        .extracting(TrainableRegistry.Entry::role)
        .containsExactly("reparam_embedding", "reparam_w1", "reparam_b1", "reparam_w2", "reparam_b2");
    assertThat(m.graph().nodes().stream().filter(n -> GraftTags.role(n).filter("reparam"::equals).isPresent()))
        .extracting(Node::opType)
        .containsExactly("MatMul", "Add", "Tanh", "MatMul", "Add");
    List<Node> outs =
        m.graph().nodes().stream().filter(n -> GraftTags.role(n).filter("reparam_out"::equals).isPresent()).toList();
    assertThat(outs).hasSize(2);
    for (Node n : outs) Ort.expose(m.graph(), n.output(), 2);
    Map<String, Ort.Out> out = Ort.run(m, sentences);

    // Oracle: [Pk | Pv] = Tanh(E·W1 + b1)·W2 + b2 in a graph of its own.
    String base = "layer.0.attention.prefix.reparam_";
    GraphBuilder b = GraphBuilder.create("mlp_oracle");
    Value h = b.op("Tanh", b.op("Add", b.op("MatMul", b.initializer("e", tensor(m, base + "embedding")), b.initializer("w1", tensor(m, base + "w1"))), b.initializer("b1", tensor(m, base + "b1"))));
    b.output("kv", b.op("Add", b.op("MatMul", h, b.initializer("w2", tensor(m, base + "w2"))), b.initializer("b2", tensor(m, base + "b2"))));
    b.typed(b.graph().outputs().get(0), DataType.FLOAT, L, 768);
    float[] kv = Ort.run(b.model(17), Map.of()).get("kv").data();
    float[] pk = out.get(outs.get(0).output().name()).data();
    float[] pv = out.get(outs.get(1).output().name()).data();
    for (int row = 0; row < L; row++) {
      for (int c = 0; c < 384; c++) {
        assertThat((double) pk[row * 384 + c]).isCloseTo(kv[row * 768 + c], org.assertj.core.data.Offset.offset(1e-5));
        assertThat((double) pv[row * 384 + c]).isCloseTo(kv[row * 768 + 384 + c], org.assertj.core.data.Offset.offset(1e-5));
      }
    }
  }

  @Test
  void goldenOpCensusOnTheBertFixture() {
    Model m = TinyModels.bertLike(TinyModels.Flavour.FUSED_OPSET17);
    ImmutableMap<String, Integer> before = OpCensus.of(m.graph());
    PassResult r = new PrefixTuningPass(Targets.all(), PrefixTuningPass.Config.defaults().withLength(2)).run(m);
    Verifier.verify(m);
    // Per layer: Shape, Slice, Concat (batch shape), Reshape, Transpose, Expand for each of K and
    // V, Concat for each; once for the shared mask: Shape, Slice, Concat, Expand, Concat.
    assertThat(OpCensus.of(m.graph()))
        .isEqualTo(census(before, "Shape", 1 + 3, "Slice", 1 + 3, "Concat", 8, "Reshape", 8 + 4, "Transpose", 8 + 4, "Expand", 5));
    assertThat(r.parametersAdded()).isEqualTo(2L * 2 * 2 * 32);
  }

  @Test
  void secondRunChangesNothingDryRunAndNoMatch() {
    Model m = WorkingModels.of(TinyModels.bertLike(TinyModels.Flavour.DECOMPOSED_OPSET11));
    List<String> names = PeftFixtures.moduleNames(m);
    PrefixTuningPass pass = new PrefixTuningPass(Targets.all(), PrefixTuningPass.Config.defaults());
    assertThat(pass.dryRun(m).changes()).containsExactly("prefix(L=10) layer.0.attention", "prefix(L=10) layer.1.attention");
    assertThat(m.metadata()).doesNotContainKey(TrainableRegistry.KEY);
    PassManager pm = new PassManager(List.of(pass));
    assertThat(pm.run(m).get(0).changed()).isTrue();
    assertThat(PeftFixtures.moduleNames(m)).isEqualTo(names);
    int nodes = m.graph().nodeCount();
    PassResult second = pm.run(m).get(0);
    assertThat(second.changed()).isFalse();
    assertThat(second.notes()).containsExactly("layer.0.attention: already has prefix", "layer.1.attention: already has prefix");
    assertThat(m.graph().nodeCount()).isEqualTo(nodes);
    assertThatThrownBy(() -> new PrefixTuningPass(Targets.glob("layer.9.attention"), PrefixTuningPass.Config.defaults()).run(m))
        .hasMessageContaining("prefix: target 'layer.9.attention' matches no attention module. The attention modules are: layer.0.attention, layer.1.attention");
  }
}
