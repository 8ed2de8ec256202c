package dev.graft.rewrite.peft;

import static dev.graft.rewrite.peft.PeftFixtures.assertSameOutputs;
import static dev.graft.rewrite.peft.PeftFixtures.copy;
import static dev.graft.rewrite.peft.PeftFixtures.tensor;
import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.fixtures.TinyModels;
import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.rewrite.Ort;
import dev.graft.rewrite.Ort.In;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.discover.LinearModule;
import dev.graft.rewrite.recipe.Recipe;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class DoraPassTest extends PeftFixtures.MiniLmSetup {
  @Test
  void identityAtInitialisationOnMiniLm() throws Exception {
    Model m = copy(miniLm);
    PassResult r = Recipe.parse("passes: [{method: dora}]", "dora.yaml").manager().run(m).get(0);
    // 12 query and value projections: A 384x8, B 8x384, dm 384.
    assertThat(r.parametersAdded()).isEqualTo(12L * (384 * 8 + 8 * 384 + 384)).isEqualTo(78_336L);
    assertThat(TrainableRegistry.parameterCount(m)).isEqualTo(78_336L);
    assertSameOutputs(m, sentences, original);
    assertSameOutputs(m, PeftFixtures.helloWorld(), PeftFixtures.lastHidden(copy(miniLm), PeftFixtures.helloWorld()));
    assertThat(new DoraPass(Targets.glob("layer.*.attention.{query,value}"), DoraPass.Config.defaults()).run(m).changed()).isFalse();
  }

  /**
   * With random A, B and dm, the adapted linear computes x·(m ⊙ V/‖V‖) + b, V = W + s·A·B,
   * m = ‖W‖ + dm, against an oracle graph that takes the norms with ReduceL2 (not the pass's
   * Sqrt of ReduceSum of squares).
   */
  @Test
  void formulaAgainstAnIndependentOrtGraph() {
    Model base = copy(miniLm);
    Model m = copy(miniLm);
    String module = "layer.1.ffn.up";
    new DoraPass(Targets.glob(module), new DoraPass.Config(4, 8, 3)).run(m);
    PeftFixtures.randomize(m, module + ".dora_B", 0.05, 1);
    PeftFixtures.randomize(m, module + ".dora_dm", 0.3, 2);

    LinearModule before = PeftFixtures.module(base, module);
    LinearModule after = PeftFixtures.module(m, module);
    Ort.expose(m.graph(), after.input(), 3);
    Ort.expose(m.graph(), after.output(), 3);
    Map<String, Ort.Out> got = Ort.run(m, sentences);
    float[] x = got.get(after.input().name()).data();
    float[] y = got.get(after.output().name()).data();
    long[] xShape = got.get(after.input().name()).shape();

    GraphBuilder b = GraphBuilder.create("oracle");
    Value xv = b.input("x", DataType.FLOAT, xShape[0], xShape[1], 384);
    Value w = b.initializer("w", before.weight().initializer().orElseThrow());
    Value a = b.initializer("a", tensor(m, module + ".dora_A"));
    Value bb = b.initializer("b", tensor(m, module + ".dora_B"));
    Value dm = b.initializer("dm", tensor(m, module + ".dora_dm"));
    Value v = b.op("Add", w, b.op("Mul", b.op("MatMul", a, bb), b.scalar(8f / 4)));
    Value mag = b.op("Add", b.op("ReduceL2", List.of(w), Attr.ints("axes", 0), Attr.of("keepdims", 1L)), dm);
    Value normV = b.op("ReduceL2", List.of(v), Attr.ints("axes", 0), Attr.of("keepdims", 1L));
    Value wPrime = b.op("Mul", b.op("Div", v, normV), mag);
    Value bias = b.initializer("bias", before.bias().orElseThrow().initializer().orElseThrow());
    b.output("z", b.op("Add", b.op("MatMul", xv, wPrime), bias));
    b.typed(b.graph().outputs().get(0), DataType.FLOAT, xShape[0], xShape[1], 1536);
    float[] expected = Ort.run(b.model(17), Map.of("x", In.floats(new long[] {xShape[0], xShape[1], 384}, x))).get("z").data();

    assertThat(Ort.maxAbsDiff(y, expected)).isLessThanOrEqualTo(1e-4);
    // The update is really there: the adapted output is far from the base's.
    Ort.expose(base.graph(), before.output(), 3);
    float[] y0 = Ort.run(base, sentences).get(before.output().name()).data();
    assertThat(Ort.maxAbsDiff(y, y0)).isGreaterThan(1e-2);
  }

  @Test
  void gemmWithTransposedWeightNormalisesItsRows() {
    Model m = TinyModels.mlp();
    long[] shape = {3, 2};
    Map<String, In> in = Map.of("x", In.floats(shape, 0.5f, -1f, 2f, 0.25f, -0.75f, 1.5f));
    float[] before = Ort.run(m, in).get("logits").data();
    PassResult r = new DoraPass(Targets.all(), new DoraPass.Config(2, 2, 1)).run(m);
    assertThat(r.changes()).hasSize(2);
    dev.graft.ir.analysis.Verifier.verify(m);
    assertThat(Ort.maxAbsDiff(before, Ort.run(m, in).get("logits").data())).isLessThanOrEqualTo(1e-6);
  }
}
