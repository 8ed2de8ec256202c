package dev.graft.trainer.train;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The proof on a non-trivial task: two interleaved spirals, only some layers trained. */
class SpiralTrainingTest {
  private static final List<String> TRAINABLE = List.of("fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias");

  @Test
  void mlpLearnsTwoSpiralsTrainingOnlyTheChosenParameters() throws Exception {
    Model model = TrainData.spiralNet(64, 32, 7);
    TrainData.Points train = TrainData.spirals(200, 0.02, 11);
    TrainData.Points test = TrainData.spirals(150, 0.02, 12);
    TrainStepGraph graphs =
        TrainStepGraph.builder(model)
            .trainables(TRAINABLE)
            .optimizer(AdamW.defaults().withWeightDecay(1e-4))
            .clipGradNorm(5.0)
            .build();
    int epochs = 150;
    int batch = 40;
    long total = (long) epochs * (train.size() / batch);
    try (Trainer t =
        Trainer.builder(graphs).schedule(LrSchedule.cosine(0.01, 50, total, 1e-4)).intraOpThreads(1).build()) {
      double before = TrainData.accuracy(t.evalStep(test.all()).logits(), test.labels());
      List<Double> losses = new ArrayList<>();
      for (int e = 0; e < epochs; e++) {
        for (int i = 0; i + batch <= train.size(); i += batch) {
          losses.add(t.trainStep(train.batch(i, i + batch)).loss());
        }
      }
      double after = TrainData.accuracy(t.evalStep(test.all()).logits(), test.labels());
      assertThat(before).isLessThan(0.8);
      assertThat(after).as("held-out accuracy after training").isGreaterThanOrEqualTo(0.95);
      assertThat(t.step()).isEqualTo(total);
      assertThat(losses.get(losses.size() - 1)).isLessThan(losses.get(0) / 4);

      // Only the chosen parameters moved; every frozen initializer is bit-identical.
      Model tuned = t.exportTrainedModel();
      for (Value init : model.graph().initializers()) {
        Tensor was = init.initializer().get();
        Tensor now = tuned.graph().initializer(init.name()).get().initializer().get();
        if (TRAINABLE.contains(init.name())) {
          assertThat(now.toFloatArray()).as(init.name()).isNotEqualTo(was.toFloatArray());
          assertThat(now.toFloatArray()).isEqualTo(t.parameters().get(init.name()).toFloatArray());
        } else {
          assertThat(now.rawData()).as(init.name()).isEqualTo(was.rawData());
        }
      }
      assertThat(tuned.graph().initializers()).hasSameSizeAs(model.graph().initializers());
    }
  }
}
