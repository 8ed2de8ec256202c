package dev.graft.trainer.train;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.graft.ir.Model;
import dev.graft.ir.tensor.Tensor;
import java.lang.management.BufferPoolMXBean;
import java.lang.management.ManagementFactory;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The trainer's sessions read the frozen weights from one shared copy ({@link SharedWeights}):
 * after fused and accumulated steps, the eval session's logits are ORT's run of the exported
 * model, whose frozen weights come from the IR, not from the shared tensors (the oracle). The
 * weights the train step moved off the heap are shared where they lie, not copied (the JVM's
 * direct-memory count).
 */
class SharedWeightsTest {
  @Test
  void trainEvalAndAccumulateSessionsComputeWithTheSharedFrozenWeights() throws Exception {
    // fc2.weight [64, 32] (8 KiB) is frozen and shared; fc1.bias upstream of it is trained, so the
    // backward pass reads fc2.weight too (FusedMatMul, transB).
    TrainStepGraph graphs =
        TrainStepGraph.builder(TrainData.spiralNet(64, 32, 21))
            .trainables(List.of("fc1.bias", "fc3.weight", "fc3.bias"))
            .build();
    TrainData.Points data = TrainData.spirals(32, 0.02, 4);
    try (Trainer t = Trainer.builder(graphs).schedule(LrSchedule.constant(0.05)).intraOpThreads(1).build()) {
      assertThat(t.sharedWeightCount()).isEqualTo(1);
      double first = t.trainStep(data.batch(0, 16)).loss();
      t.trainStep(data.batch(16, 32));
      t.trainStep(List.of(data.batch(32, 40), data.batch(40, 48)));
      Map<String, Tensor> batch = data.batch(48, 64);
      EvalResult r = t.evalStep(batch);
      assertThat(r.loss()).isLessThan(first);

      Map<String, Tensor> inputs = Map.of("x", batch.get("x"));
      float[] want = OrtRun.run(t.exportTrainedModel(), inputs).get("logits").toFloatArray();
      float[] got = r.logits().toFloatArray();
      assertThat(got).hasSameSizeAs(want);
      for (int i = 0; i < want.length; i++) {
        assertThat(got[i]).as("logit %s", i).isCloseTo(want[i], within(1e-5f * Math.max(1, Math.abs(want[i]))));
      }
    }
  }

  @Test
  void theFrozenWeightsAreMovedOffTheHeapOnceAndSharedWithoutACopy() throws Exception {
    // fc2.weight [512, 512] is 1 MiB. Building the train step moves it into a direct buffer, in
    // the caller's model too; the sessions must read that buffer in place, where a copy would add
    // its 1 MiB to the JVM's direct memory.
    Model model = TrainData.spiralNet(512, 512, 21);
    float[] fc2 = weight(model, "fc2.weight").toFloatArray();
    long weightBytes = 512 * 512 * 4;
    TrainStepGraph graphs =
        TrainStepGraph.builder(model).trainables(List.of("fc1.bias", "fc3.weight", "fc3.bias")).build();
    assertThat(weight(model, "fc2.weight").rawData().isDirect()).as("fc2.weight off the heap").isTrue();
    assertThat(weight(model, "fc2.weight").toFloatArray()).containsExactly(fc2);
    assertThat(weight(model, "fc3.weight").rawData().isDirect()).as("a trainable stays").isFalse();
    TrainData.Points data = TrainData.spirals(32, 0.02, 4);
    long before = directBytes();
    try (Trainer t = Trainer.builder(graphs).schedule(LrSchedule.constant(0.05)).intraOpThreads(1).build()) {
      assertThat(t.sharedWeightCount()).as("fc1.weight (4 KiB) and fc2.weight").isEqualTo(2);
      assertThat(directBytes() - before).as("direct memory the trainer added").isLessThan(weightBytes / 2);
      t.trainStep(data.batch(0, 32));
      Map<String, Tensor> batch = data.batch(32, 64);
      float[] got = t.evalStep(batch).logits().toFloatArray();
      float[] want = OrtRun.run(t.exportTrainedModel(), Map.of("x", batch.get("x"))).get("logits").toFloatArray();
      for (int i = 0; i < want.length; i++) {
        assertThat(got[i]).as("logit %s", i).isCloseTo(want[i], within(1e-5f * Math.max(1, Math.abs(want[i]))));
      }
    }
  }

  private static Tensor weight(Model m, String name) {
    return m.graph().initializer(name).orElseThrow().initializer().orElseThrow();
  }

  private static long directBytes() {
    return ManagementFactory.getPlatformMXBeans(BufferPoolMXBean.class).stream()
        .filter(p -> p.getName().equals("direct"))
        .mapToLong(BufferPoolMXBean::getMemoryUsed)
        .sum();
  }
}
