package dev.graft.rewrite.peft;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.common.collect.ImmutableMap;
import dev.graft.fixtures.PretrainedModels;
import dev.graft.fixtures.TinyModels;
import dev.graft.ir.DataType;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.OpCensus;
import dev.graft.ir.analysis.Verifier;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.GraftTags;
import dev.graft.rewrite.Ort;
import dev.graft.rewrite.Ort.In;
import dev.graft.rewrite.PassManager;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.discover.LinearModule;
import dev.graft.rewrite.discover.Module;
import dev.graft.rewrite.discover.ModuleDiscovery;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class LoraPassTest {
  private static final Targets QUERY_VALUE = Targets.glob("layer.*.attention.{query,value}");
  private static Path miniLmPath;

  @BeforeAll
  static void resolve() {
    miniLmPath = PretrainedModels.miniLm();
  }

  private static Model miniLm() throws Exception {
    return WorkingModels.load(miniLmPath);
  }

  @Test
  void realTokenIdsComeFromTheVocabulary() throws Exception {
    assertThat(Ort.miniLmIds(List.of("[CLS]", "hello", "world", "[SEP]"))).containsExactly(101, 7592, 2088, 102);
  }

  @Test
  void identityInitialisedLoraLeavesMiniLmOutputsUnchanged() throws Exception {
    Model original = miniLm();
    Model adapted = miniLm();
    PassResult r =
        new LoraPass(QUERY_VALUE, LoraPass.Config.defaults().withDropout(0.1)).run(adapted);
    Verifier.verify(adapted);

    // 6 layers x 2 modules x (384*8 + 8*384): the closed form.
    assertThat(r.parametersAdded()).isEqualTo(6L * 2 * (384 * 8 + 8 * 384)).isEqualTo(73_728L);
    assertThat(r.changes()).hasSize(12);
    assertThat(TrainableRegistry.parameterCount(adapted)).isEqualTo(73_728L);

    Map<String, In> in = Ort.miniLmSentences();
    float[] before = Ort.run(original, in).get("last_hidden_state").data();
    float[] after = Ort.run(adapted, in).get("last_hidden_state").data();
    assertThat(after).hasSize(2 * 8 * 384);
    assertThat(Ort.maxAbsDiff(before, after)).isLessThanOrEqualTo(1e-5);
  }

  @Test
  void randomLoraDeltaEqualsXabsFromASeparateGraph() throws Exception {
    Model original = miniLm();
    Model adapted = miniLm();
    LoraPass.Config cfg = LoraPass.Config.defaults().withRank(4).withAlpha(8).withInit(LoraPass.Init.GAUSSIAN).withSeed(7);
    new LoraPass(Targets.glob("layer.2.attention.value"), cfg).run(adapted);

    // Give B random values so the update is not zero.
    Graph g = adapted.graph();
    Value b = g.initializer("layer.2.attention.value.lora_B").orElseThrow();
    SplittableRandom random = new SplittableRandom(3);
    float[] bv = new float[4 * 384];
    for (int i = 0; i < bv.length; i++) bv[i] = (float) random.nextGaussian() * 0.05f;
    g.setInitializer(b, DenseTensor.ofFloats(b.name(), new long[] {4, 384}, bv));

    // Expose the layer's input x and its output (after the bias) in both models.
    LinearModule adaptedValue = linear(adapted, "layer.2.attention.value");
    LinearModule originalValue = linear(original, "layer.2.attention.value");
    assertThat(adaptedValue.input().name()).isEqualTo(originalValue.input().name());
    Ort.expose(g, adaptedValue.input(), 3);
    Ort.expose(g, adaptedValue.output(), 3);
    Ort.expose(original.graph(), originalValue.output(), 3);

    Map<String, In> in = Ort.miniLmSentences();
    Map<String, Ort.Out> a = Ort.run(adapted, in);
    float[] x = a.get(adaptedValue.input().name()).data();
    float[] yAdapted = a.get(adaptedValue.output().name()).data();
    float[] yOriginal = Ort.run(original, in).get(originalValue.output().name()).data();
    float[] delta = new float[yAdapted.length];
    for (int i = 0; i < delta.length; i++) delta[i] = yAdapted[i] - yOriginal[i];

    // The oracle: x·A·B·s in a graph of its own, with A, B and s from the adapted model.
    GraphBuilder ob = GraphBuilder.create("oracle");
    Value xin = ob.input("x", DataType.FLOAT, 2, 8, 384);
    Value av = ob.initializer("A", tensor(adapted, "layer.2.attention.value.lora_A"));
    Value bvv = ob.initializer("B", tensor(adapted, "layer.2.attention.value.lora_B"));
    Value s = ob.scalar((float) cfg.scaling());
    ob.output("d", ob.op("Mul", ob.op("MatMul", ob.op("MatMul", xin, av), bvv), s));
    ob.typed(ob.graph().outputs().get(0), DataType.FLOAT, 2, 8, 384);
    float[] expected = Ort.run(ob.model(17), Map.of("x", In.floats(new long[] {2, 8, 384}, x))).get("d").data();

    assertThat(cfg.scaling()).isEqualTo(2.0);
    double norm = 0;
    for (float f : expected) norm = Math.max(norm, Math.abs(f));
    assertThat(norm).isGreaterThan(1e-2); // the update is really there
    assertThat(Ort.maxAbsDiff(delta, expected)).isLessThanOrEqualTo(1e-4);
  }

  @Test
  void goldenOpCensusOnTheMlp() {
    Model m = TinyModels.mlp();
    assertThat(OpCensus.of(m.graph())).isEqualTo(ImmutableMap.of("Add", 1, "Gemm", 1, "MatMul", 1, "Relu", 1));
    PassResult r = new LoraPass(Targets.all(), LoraPass.Config.defaults().withRank(2).withDropout(0.1)).run(m);
    Verifier.verify(m);
    assertThat(OpCensus.of(m.graph()))
        .isEqualTo(ImmutableMap.of("MatMul", 5, "Add", 3, "Dropout", 2, "Mul", 2, "Gemm", 1, "Relu", 1));
    // fc1: 2 -> 8, fc2: 8 -> 2, r = 2.
    assertThat(r.parametersAdded()).isEqualTo(2 * (2 + 8) + 2 * (8 + 2));
    assertThat(m.graph().outputs().get(0).name()).isEqualTo("logits");
    // The bias Add still reads the bias; the update joined before it.
    LinearModule fc2 = linear(m, "fc2");
    assertThat(fc2.biasAdd().input(1).name()).isEqualTo("fc2.bias");
    assertThat(GraftTags.isMerge(fc2.biasAdd().input(0).producer().orElseThrow())).isTrue();
  }

  @Test
  void goldenOpCensusOnTheBertFixture() {
    Model m = TinyModels.bertLike(TinyModels.Flavour.FUSED_OPSET17);
    ImmutableMap<String, Integer> before = OpCensus.of(m.graph());
    new LoraPass(QUERY_VALUE, LoraPass.Config.defaults()).run(m);
    Map<String, Integer> after = OpCensus.of(m.graph());
    // 2 layers x 2 modules: 2 MatMuls, a Mul and an Add each.
    assertThat(after.get("MatMul")).isEqualTo(before.get("MatMul") + 8);
    assertThat(after.get("Mul")).isEqualTo(before.getOrDefault("Mul", 0) + 4);
    assertThat(after.get("Add")).isEqualTo(before.get("Add") + 4);
    assertThat(after.values().stream().mapToInt(Integer::intValue).sum())
        .isEqualTo(before.values().stream().mapToInt(Integer::intValue).sum() + 16);
  }

  @Test
  void secondRunChangesNothingAndSaysSo() {
    Model m = WorkingModels.of(TinyModels.bertLike(TinyModels.Flavour.DECOMPOSED_OPSET11));
    PassManager pm = new PassManager(List.of(new LoraPass(QUERY_VALUE, LoraPass.Config.defaults())));
    PassResult first = pm.run(m).get(0);
    assertThat(first.changed()).isTrue();
    int nodes = m.graph().nodeCount();
    String registry = m.metadata().get(TrainableRegistry.KEY);
    PassResult second = pm.run(m).get(0);
    assertThat(second.changed()).isFalse();
    assertThat(second.parametersAdded()).isZero();
    assertThat(second.notes()).hasSize(4).allMatch(n -> n.endsWith("already has lora"));
    assertThat(second.summary()).contains("no change");
    assertThat(m.graph().nodeCount()).isEqualTo(nodes);
    assertThat(m.metadata().get(TrainableRegistry.KEY)).isEqualTo(registry);
    // Discovery still sees the same modules after the rewrite.
    assertThat(ModuleDiscovery.discover(m).stream().map(Module::name))
        .containsExactlyElementsOf(
            ModuleDiscovery.discover(WorkingModels.of(TinyModels.bertLike(TinyModels.Flavour.DECOMPOSED_OPSET11))).stream().map(Module::name).toList());
  }

  @Test
  void dryRunListsTargetsAndChangesNothing() {
    Model m = TinyModels.bertLike(TinyModels.Flavour.FUSED_OPSET17);
    int nodes = m.graph().nodeCount();
    PassResult r = new LoraPass(QUERY_VALUE.layers(1, 1), LoraPass.Config.defaults()).dryRun(m);
    assertThat(r.dryRun()).isTrue();
    assertThat(r.changes()).containsExactlyInAnyOrder("lora(r=8) layer.1.attention.query", "lora(r=8) layer.1.attention.value");
    assertThat(r.parametersAdded()).isEqualTo(2L * 8 * (32 + 32));
    assertThat(m.graph().nodeCount()).isEqualTo(nodes);
    assertThat(m.metadata()).doesNotContainKey(TrainableRegistry.KEY);
  }

  @Test
  void aTargetThatMatchesNothingListsTheModules() {
    Model m = TinyModels.bertLike(TinyModels.Flavour.FUSED_OPSET17);
    assertThatThrownBy(() -> new LoraPass(Targets.glob("layer.*.attn.q"), LoraPass.Config.defaults()).run(m))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("lora: target 'layer.*.attn.q' matches no linear module")
        .hasMessageContaining("layer.0.attention.query, layer.0.attention.key")
        .hasMessageContaining("layer.1.ffn.down");
    assertThatThrownBy(() -> new LoraPass(QUERY_VALUE.layers(5, 7), LoraPass.Config.defaults()).run(m))
        .hasMessageContaining("in layers 5..7");
  }

  @Test
  void registrySurvivesSaveAndLoad() throws Exception {
    Model m = TinyModels.bertLike(TinyModels.Flavour.FUSED_OPSET17);
    new LoraPass(Targets.regex("layer\\.0\\.attention\\.(query|value)"), LoraPass.Config.defaults().withRank(2)).run(m);
    Model loaded = ModelIO.fromBytes(ModelIO.toBytes(m), null);
    List<TrainableRegistry.Entry> entries = TrainableRegistry.read(loaded);
    assertThat(entries)
        .containsExactly(
            new TrainableRegistry.Entry("layer.0.attention.query.lora_A", "lora", "layer.0.attention.query", "A"),
            new TrainableRegistry.Entry("layer.0.attention.query.lora_B", "lora", "layer.0.attention.query", "B"),
            new TrainableRegistry.Entry("layer.0.attention.value.lora_A", "lora", "layer.0.attention.value", "A"),
            new TrainableRegistry.Entry("layer.0.attention.value.lora_B", "lora", "layer.0.attention.value", "B"));
    assertThat(TrainableRegistry.parameterCount(loaded)).isEqualTo(2L * (32 * 2 + 2 * 32));
    // Discovery on the loaded copy still finds 12 linears, not the adapters' MatMuls.
    assertThat(ModuleDiscovery.discover(loaded).stream().filter(x -> x instanceof LinearModule)).hasSize(12);
  }

  private static LinearModule linear(Model m, String name) {
    return ModuleDiscovery.discover(m).stream()
        .filter(x -> x.name().equals(name))
        .map(x -> (LinearModule) x)
        .findFirst()
        .orElseThrow();
  }

  private static Tensor tensor(Model m, String name) {
    return m.graph().initializer(name).orElseThrow().initializer().orElseThrow();
  }
}
