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
import dev.graft.rewrite.discover.LinearModule;
import dev.graft.rewrite.discover.NormModule;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class BitFitPassTest extends PeftFixtures.MiniLmSetup {
  @Test
  void zeroDeltasLeaveMiniLmUnchanged() throws Exception {
    Model m = copy(miniLm);
    String frozenBias = PeftFixtures.<LinearModule>module(m, "layer.0.attention.query").bias().orElseThrow().name();
    float[] frozen = tensor(m, frozenBias).toFloatArray();
    PassResult r = new BitFitPass(Targets.all()).run(m);
    // Per layer: query, key, value, output 4x384, up 1536, down 384, two norms 2x384; plus the embeddings norm.
    assertThat(r.parametersAdded()).isEqualTo(6L * (4 * 384 + 1536 + 384 + 2 * 384) + 384).isEqualTo(25_728L);
    assertThat(r.changes()).hasSize(6 * 8 + 1);
    assertThat(TrainableRegistry.parameterCount(m)).isEqualTo(25_728L);
    assertThat(tensor(m, frozenBias).toFloatArray()).isEqualTo(frozen); // the original stays frozen
    assertSameOutputs(m, sentences, original);
    assertSameOutputs(m, PeftFixtures.helloWorld(), PeftFixtures.lastHidden(copy(miniLm), PeftFixtures.helloWorld()));
  }

  @Test
  void randomDeltasShiftTheLinearAndTheNormByExactlyThemselves() {
    Model base = copy(miniLm);
    Model m = copy(miniLm);
    new BitFitPass(Targets.glob("layer.1.{ffn.up,attention.norm}")).run(m);
    Verifier.verify(m);
    PeftFixtures.randomize(m, "layer.1.ffn.up.bitfit_dbias", 0.5, 4);
    PeftFixtures.randomize(m, "layer.1.attention.norm.bitfit_dbias", 0.5, 5);

    // The norm's output shifts by dbeta; the up projection then reads the shifted norm, so its
    // expected output is (norm + dbeta)·W + b + db, computed from the original's norm output.
    NormModule normBefore = PeftFixtures.module(base, "layer.1.attention.norm");
    LinearModule upBefore = PeftFixtures.module(base, "layer.1.ffn.up");
    LinearModule up = PeftFixtures.module(m, "layer.1.ffn.up");
    Ort.expose(base.graph(), normBefore.output(), 3);
    Ort.expose(m.graph(), up.output(), 3);
    float[] norm = Ort.run(base, sentences).get(normBefore.output().name()).data();
    float[] adapted = Ort.run(m, sentences).get(up.output().name()).data();

    GraphBuilder b = GraphBuilder.create("oracle");
    Value n = b.input("n", DataType.FLOAT, 2, 8, 384);
    Value shifted = b.op("Add", n, b.initializer("dbeta", tensor(m, "layer.1.attention.norm.bitfit_dbias")));
    Value w = b.initializer("w", upBefore.weight().initializer().orElseThrow());
    Value bias = b.initializer("b", upBefore.bias().orElseThrow().initializer().orElseThrow());
    Value db = b.initializer("db", tensor(m, "layer.1.ffn.up.bitfit_dbias"));
    b.output("z", b.op("Add", b.op("Add", b.op("MatMul", shifted, w), bias), db));
    b.typed(b.graph().outputs().get(0), DataType.FLOAT, 2, 8, 1536);
    float[] expected = Ort.run(b.model(17), Map.of("n", In.floats(new long[] {2, 8, 384}, norm))).get("z").data();
    assertThat(Ort.maxAbsDiff(adapted, expected)).isLessThanOrEqualTo(1e-4);
    assertThat(PeftFixtures.maxAbs(tensor(m, "layer.1.ffn.up.bitfit_dbias").toFloatArray())).isGreaterThan(0.1);
  }

  @Test
  void goldenOpCensusOnTheBertFixture() {
    Model m = TinyModels.bertLike(TinyModels.Flavour.FUSED_OPSET17);
    ImmutableMap<String, Integer> before = OpCensus.of(m.graph());
    PassResult r = new BitFitPass(Targets.all()).run(m);
    Verifier.verify(m);
    // 12 linear biases and 5 norm shifts, one Add each.
    assertThat(OpCensus.of(m.graph())).isEqualTo(census(before, "Add", 22 + 17));
    assertThat(r.parametersAdded()).isEqualTo(2L * (4 * 32 + 64 + 32 + 2 * 32) + 32);
  }

  @Test
  void secondRunChangesNothingAndDiscoveryStillSeesTheModules() {
    Model m = WorkingModels.of(TinyModels.bertLike(TinyModels.Flavour.DECOMPOSED_OPSET11));
    List<String> names = PeftFixtures.moduleNames(m);
    PassManager pm = new PassManager(List.of(new BitFitPass(Targets.all()), Ia3Pass.defaults()));
    assertThat(pm.run(m)).allMatch(PassResult::changed);
    assertThat(PeftFixtures.moduleNames(m)).isEqualTo(names);
    int nodes = m.graph().nodeCount();
    List<PassResult> second = pm.run(m);
    assertThat(second).noneMatch(PassResult::changed);
    assertThat(second.get(0).notes()).hasSize(17).allMatch(n -> n.endsWith("already has bitfit"));
    assertThat(m.graph().nodeCount()).isEqualTo(nodes);
  }

  @Test
  void dryRunAndNoMatch() {
    Model m = TinyModels.bertLike(TinyModels.Flavour.FUSED_OPSET17);
    PassResult r = new BitFitPass(Targets.glob("layer.0.**")).dryRun(m);
    assertThat(r.changes()).hasSize(8).contains("bitfit layer.0.attention.query", "bitfit layer.0.ffn.norm");
    assertThat(r.parametersAdded()).isEqualTo(4 * 32 + 64 + 32 + 2 * 32);
    assertThat(m.metadata()).doesNotContainKey(TrainableRegistry.KEY);
    assertThatThrownBy(() -> new BitFitPass(Targets.glob("pooler.*")).run(m))
        .hasMessageContaining("bitfit: target 'pooler.*' matches no biased linear or norm module")
        .hasMessageContaining("17 modules, globs in layers 0..1: embeddings.norm, layer.*.attention.query");
  }
}
