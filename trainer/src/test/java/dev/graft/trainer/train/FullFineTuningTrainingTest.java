package dev.graft.trainer.train;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.peft.FullFineTuningPass;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Full fine-tuning of the tiny BERT-like encoder with a head: every parameter is an input of the
 * train step, the loss falls, and every parameter moves (the embedding tables through Gather's
 * scatter-add gradient, the norms through LayerNormalization's).
 */
class FullFineTuningTrainingTest {
  @Test
  void everyParameterTrainsAndTheLossFalls() throws Exception {
    Model model = BertLikeTrainingTest.classifier();
    new FullFineTuningPass(Targets.all()).run(model);
    List<String> trainable = Trainables.fromMetadata(model);
    long floatTensors =
        model.graph().initializers().stream()
            .filter(v -> v.initializer().map(t -> t.dataType().isFloatingPoint() && t.numElements() > 1).orElse(false))
            .count();
    assertThat(trainable).hasSize((int) floatTensors);
    assertThat(TrainableRegistry.read(model)).anyMatch(e -> e.role().equals("table"));

    Map<String, Tensor> batch = BertLikeTrainingTest.batch(3, dev.graft.fixtures.TinyModels.BERT_VOCAB);
    TrainStepGraph graphs = TrainStepGraph.builder(model).trainables(trainable).clipGradNorm(1.0).build();
    assertThat(graphs.trainStep().graph().inputs()).extracting(Value::name).containsAll(trainable);
    try (Trainer t = Trainer.builder(graphs).schedule(LrSchedule.constant(1e-3)).intraOpThreads(1).build()) {
      List<Double> losses = new ArrayList<>();
      for (int step = 0; step < 30; step++) losses.add(t.trainStep(batch).loss());
      assertThat(losses.get(29)).isLessThan(losses.get(0) * 0.5);
      Model tuned = t.exportTrainedModel();
      for (String name : trainable) {
        Tensor before = model.graph().initializer(name).orElseThrow().initializer().orElseThrow();
        Tensor now = tuned.graph().initializer(name).orElseThrow().initializer().orElseThrow();
        assertThat(now.rawData()).as(name).isNotEqualTo(before.rawData());
      }
    }
  }
}
