package dev.graft.rewrite.peft;

import static dev.graft.rewrite.peft.PeftFixtures.assertSameOutputs;
import static dev.graft.rewrite.peft.PeftFixtures.copy;
import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.fixtures.TinyModels;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.OpCensus;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

class FullFineTuningPassTest extends PeftFixtures.MiniLmSetup {
  /** Float initializers of more than one element: the model's parameters, counted independently of discovery. */
  private static long floatParameters(Model m, Set<String> out) {
    long n = 0;
    for (Value v : m.graph().initializers()) {
      Tensor t = v.initializer().orElseThrow();
      if (!t.dataType().isFloatingPoint() || t.numElements() < 2) continue;
      out.add(v.name());
      n += t.numElements();
    }
    return n;
  }

  @Test
  void everyParameterOfMiniLmTrainsAndTheGraphDoesNotChange() throws Exception {
    Model m = copy(miniLm);
    var before = OpCensus.of(m.graph());
    int nodes = m.graph().nodes().size();
    Set<String> params = new java.util.LinkedHashSet<>();
    long expected = floatParameters(m, params);
    PassResult r = new FullFineTuningPass(Targets.all()).run(m);

    // all-MiniLM-L6-v2 has 22.7M parameters; every one is recorded, each tensor once.
    assertThat(expected).isGreaterThan(22_000_000L);
    assertThat(TrainableRegistry.parameterCount(m)).isEqualTo(expected);
    assertThat(r.parametersAdded()).isEqualTo(expected);
    List<String> recorded = TrainableRegistry.read(m).stream().map(TrainableRegistry.Entry::initializer).toList();
    assertThat(recorded).doesNotHaveDuplicates();
    assertThat(Set.copyOf(recorded)).isEqualTo(params);
    assertThat(m.graph().nodes()).hasSize(nodes);
    assertThat(OpCensus.of(m.graph())).isEqualTo(before);
    assertSameOutputs(m, sentences, original);

    // Idempotent: a second run changes nothing.
    PassResult again = new FullFineTuningPass(Targets.all()).run(m);
    assertThat(again.changed()).isFalse();
    assertThat(TrainableRegistry.read(m)).hasSize(recorded.size());
  }

  @Test
  void chosenModulesOnly() {
    Model m = copy(miniLm);
    new FullFineTuningPass(Targets.glob("layer.5.**")).run(m);
    Set<String> modules =
        TrainableRegistry.read(m).stream().map(TrainableRegistry.Entry::module).collect(Collectors.toSet());
    // query, key, value, output, up, down and two norms.
    assertThat(modules).hasSize(8).allMatch(s -> s.startsWith("layer.5."));
    assertThat(TrainableRegistry.parameterCount(m))
        .isEqualTo(4L * (384 * 384 + 384) + 2L * (384 * 1536) + 1536 + 384 + 2L * 2 * 384);
  }

  @Test
  void weightsStoredAsConstantNodesAreLiftedToInitializersOfTheSameName() {
    Model m = WorkingModels.of(TinyModels.bertLike(TinyModels.Flavour.DECOMPOSED_OPSET11));
    long[] shape = {1, 5};
    java.util.Map<String, dev.graft.rewrite.Ort.In> in =
        java.util.Map.of(
            "input_ids", dev.graft.rewrite.Ort.In.longs(shape, 1, 7, 42, 9, 2),
            "attention_mask", dev.graft.rewrite.Ort.In.longs(shape, 1, 1, 1, 1, 1),
            "token_type_ids", dev.graft.rewrite.Ort.In.longs(shape, 0, 0, 0, 0, 0));
    float[] before = PeftFixtures.lastHidden(m, in);
    int lowered =
        dev.graft.ir.Constants.lowerToConstants(
            m.graph(), v -> v.initializer().map(t -> t.dataType().isFloatingPoint() && t.numElements() > 1).orElse(false));
    assertThat(lowered).isPositive();
    PassResult r = new FullFineTuningPass(Targets.all()).run(m);
    assertThat(TrainableRegistry.read(m)).isNotEmpty();
    for (TrainableRegistry.Entry e : TrainableRegistry.read(m)) {
      assertThat(m.graph().initializer(e.initializer())).as(e.initializer()).isPresent();
    }
    assertThat(TrainableRegistry.parameterCount(m)).isEqualTo(r.parametersAdded());
    assertSameOutputs(m, in, before);
  }
}
