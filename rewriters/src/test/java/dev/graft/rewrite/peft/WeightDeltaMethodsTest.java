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
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * VeRA, LoHa and LoKr, the methods built on {@link WeightDeltaPass}: identity at initialisation
 * on MiniLM, and each one's ΔW against an oracle graph written from the paper's formula with
 * other ops (Einsum for the Kronecker product, another association for VeRA and LoHa).
 */
class WeightDeltaMethodsTest extends PeftFixtures.MiniLmSetup {
  @ParameterizedTest
  @ValueSource(strings = {"vera", "loha", "lokr"})
  void identityAtInitialisationOnMiniLm(String method) throws Exception {
    Model m = copy(miniLm);
    PassResult r = Recipe.parse("passes: [{method: " + method + "}]", method + ".yaml").manager().run(m).get(0);
    long expected =
        switch (method) {
          case "vera" -> 12L * (256 + 384);
          case "loha" -> 12L * 2 * 8 * (384 + 384);
          default -> 12L * (64 + 8 * (48 + 48));
        };
    assertThat(r.parametersAdded()).isEqualTo(expected);
    assertThat(TrainableRegistry.parameterCount(m)).isEqualTo(expected);
    assertSameOutputs(m, sentences, original);
    assertThat(Recipe.parse("passes: [{method: " + method + "}]", "again.yaml").manager().run(m).get(0).changed()).isFalse();
  }

  @ParameterizedTest
  @ValueSource(strings = {"vera", "loha", "lokr"})
  void formulaAgainstAnIndependentOrtGraph(String method) {
    Model base = copy(miniLm);
    Model m = copy(miniLm);
    String module = "layer.2.ffn.up"; // [384, 1536]
    Recipe.parse("passes: [{method: " + method + ", targets: " + module + ", rank: 4}]", "x.yaml").manager().run(m);
    int seed = 1;
    for (TrainableRegistry.Entry e : TrainableRegistry.read(m)) PeftFixtures.randomize(m, e.initializer(), 0.2, seed++);

    LinearModule before = PeftFixtures.module(base, module);
    LinearModule after = PeftFixtures.module(m, module);
    Ort.expose(m.graph(), after.input(), 3);
    Ort.expose(m.graph(), after.output(), 3);
    Map<String, Ort.Out> got = Ort.run(m, sentences);
    float[] x = got.get(after.input().name()).data();
    long[] xShape = got.get(after.input().name()).shape();

    GraphBuilder b = GraphBuilder.create("oracle");
    Value xv = b.input("x", DataType.FLOAT, xShape[0], xShape[1], 384);
    Value w = b.initializer("w", before.weight().initializer().orElseThrow());
    Value delta =
        switch (method) {
          case "vera" -> {
            // (A·diag(d))·B, then scale the columns by b: the other association of the pass's product.
            Value a = b.initializer("A", tensor(m, "vera_A_384x4_seed0"));
            Value bm = b.initializer("B", tensor(m, "vera_B_4x1536_seed0"));
            Value d = b.initializer("d", tensor(m, module + ".vera_d"));
            Value bv = b.initializer("b", tensor(m, module + ".vera_b"));
            yield b.op("Mul", b.op("MatMul", b.op("Mul", a, d), bm), bv);
          }
          case "loha" -> {
            Value p1 = b.op("MatMul", b.initializer("A1", tensor(m, module + ".loha_A1")), b.initializer("B1", tensor(m, module + ".loha_B1")));
            Value p2 = b.op("MatMul", b.initializer("A2", tensor(m, module + ".loha_A2")), b.initializer("B2", tensor(m, module + ".loha_B2")));
            yield b.op("Mul", b.op("Mul", p1, b.scalar(16f / 4)), p2);
          }
          default -> {
            Value c = b.initializer("C", tensor(m, module + ".lokr_C"));
            Value low = b.op("MatMul", b.initializer("A", tensor(m, module + ".lokr_A")), b.initializer("B", tensor(m, module + ".lokr_B")));
            Value k = b.op("Einsum", List.of(c, low), Attr.of("equation", "ij,kl->ikjl"));
            yield b.op("Mul", b.op("Reshape", k, b.int64s(384, 1536)), b.scalar(16f / 4));
          }
        };
    Value bias = b.initializer("bias", before.bias().orElseThrow().initializer().orElseThrow());
    b.output("z", b.op("Add", b.op("MatMul", xv, b.op("Add", w, delta)), bias));
    b.typed(b.graph().outputs().get(0), DataType.FLOAT, xShape[0], xShape[1], 1536);
    float[] expected = Ort.run(b.model(17), Map.of("x", In.floats(new long[] {xShape[0], xShape[1], 384}, x))).get("z").data();
    float[] y = got.get(after.output().name()).data();
    assertThat(Ort.maxAbsDiff(y, expected)).isLessThanOrEqualTo(1e-4);
    Ort.expose(base.graph(), before.output(), 3);
    assertThat(Ort.maxAbsDiff(y, Ort.run(base, sentences).get(before.output().name()).data())).isGreaterThan(1e-2);
  }

  @Test
  void veraSharesItsFrozenMatricesAcrossLayersAndLokrRefusesSizesTheFactorDoesNotDivide() {
    Model m = copy(miniLm);
    new VeraPass(Targets.glob("layer.*.attention.{query,value}"), VeraPass.Config.defaults()).run(m);
    assertThat(m.graph().initializers()).filteredOn(v -> v.name().startsWith("vera_A_")).hasSize(1);
    assertThat(m.graph().initializers()).filteredOn(v -> v.name().startsWith("vera_B_")).hasSize(1);

    Model mlp = TinyModels.mlp(); // [2 -> 8 -> 2]: factor 4 divides neither 2
    org.assertj.core.api.Assertions.assertThatThrownBy(
            () -> new LokrPass(Targets.all(), new LokrPass.Config(1, 1, 4, 0)).dryRun(mlp))
        .hasMessageContaining("matches no linear whose sizes the factor 4 divides");
  }
}
