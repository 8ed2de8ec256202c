package dev.graft.trainer.run;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.common.collect.ImmutableList;
import dev.graft.fixtures.TinyModels;
import dev.graft.ir.Model;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.trainer.task.DataConfig;
import dev.graft.trainer.task.Evaluation;
import dev.graft.trainer.task.Objective;
import dev.graft.trainer.task.Task;
import dev.graft.trainer.task.TaskBatch;
import dev.graft.trainer.task.TaskHead;
import dev.graft.trainer.train.EvalResult;
import dev.graft.trainer.train.Loss;
import dev.graft.trainer.train.Trainer;
import ai.onnxruntime.OrtException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The loop with a task it has never seen (a toy regression on a tiny MLP, one class written
 * here) and the per-epoch trainable-set hook: epoch 1 trains fc2's bias, epoch 2 also fc1's
 * bias (gradual unfreezing in miniature); fc1's weight never trains.
 */
class TrainingLoopTest {
  /** y = sum(x) in both outputs, from 32 random points; MSE; the eval loss is the metric. */
  static final class ToyTask implements Task {
    private final List<float[]> xs = new ArrayList<>();

    @Override
    public String name() {
      return "toy";
    }

    @Override
    public String load(DataConfig data) {
      SplittableRandom r = new SplittableRandom(1);
      for (int i = 0; i < 32; i++) xs.add(new float[] {(float) r.nextGaussian(), (float) r.nextGaussian()});
      return "toy data";
    }

    @Override
    public Optional<TaskHead> head(Model model) {
      return Optional.empty();
    }

    @Override
    public Objective objective(Model model) {
      return Objective.of(model, "logits", Loss.meanSquaredError());
    }

    private TaskBatch batch(List<float[]> rows) {
      float[] x = new float[rows.size() * 2];
      float[] y = new float[rows.size() * 2];
      for (int i = 0; i < rows.size(); i++) {
        x[2 * i] = rows.get(i)[0];
        x[2 * i + 1] = rows.get(i)[1];
        y[2 * i] = y[2 * i + 1] = rows.get(i)[0] + rows.get(i)[1];
      }
      long[] dims = {rows.size(), 2};
      return TaskBatch.of(Map.of("x", DenseTensor.ofFloats("x", dims, x), "labels", DenseTensor.ofFloats("labels", dims, y)), rows.size());
    }

    @Override
    public List<TaskBatch> trainBatches(long seed) {
      List<TaskBatch> out = new ArrayList<>();
      for (int i = 0; i < xs.size(); i += 8) out.add(batch(xs.subList(i, i + 8)));
      return out;
    }

    @Override
    public int trainSize() {
      return xs.size();
    }

    @Override
    public int testSize() {
      return xs.size();
    }

    @Override
    public Evaluation evaluate(Trainer trainer) throws OrtException {
      EvalResult r = trainer.evalStep(batch(xs).feeds());
      return Evaluation.of(r.loss(), Map.of("mse", r.loss()));
    }

    @Override
    public Model finish(Model trained) {
      describe(trained);
      return trained;
    }
  }

  private static final TrainableSchedule UNFREEZE =
      (epoch, current, model) -> epoch == 1 ? ImmutableList.of("fc2.bias") : ImmutableList.of("fc2.bias", "fc1.bias");

  private static float[] values(Model m, String name) {
    return m.graph().initializer(name).orElseThrow().initializer().orElseThrow().toFloatArray();
  }

  private static Model train(Path out, int epochs, boolean resume, List<String> messages) throws Exception {
    java.nio.file.Files.createDirectories(out);
    Model model = TinyModels.mlp();
    TrainableRegistry.add(model, List.of(new TrainableRegistry.Entry("fc2.bias", "bitfit", "fc2", "bias")));
    RunConfig config = RunConfig.builder(List.of(out.resolve("unused.tsv")), null, out)
        .epochs(epochs).batchSize(8).learningRate(0.05).threads(1).resume(resume).build();
    ToyTask task = new ToyTask();
    task.load(config.data());
    RunListener listener = new RunListener() {
      @Override
      public void message(String line) {
        messages.add(line);
      }
    };
    return new TrainingLoop(config, listener, UNFREEZE)
        .train(model, task, new TrainingLoop.Span(1, 0, epochs, epochs), new MetricsLog(out, "toy"));
  }

  @Test
  void theHookChangesWhatTrainsFromOneEpochToTheNext(@TempDir Path dir) throws Exception {
    Model base = TinyModels.mlp();
    List<String> messages = new ArrayList<>();
    Model one = train(dir.resolve("one"), 1, false, messages);
    assertThat(values(one, "fc2.bias")).isNotEqualTo(values(base, "fc2.bias"));
    assertThat(values(one, "fc1.bias")).as("frozen in epoch 1").isEqualTo(values(base, "fc1.bias"));
    assertThat(messages).isEmpty();

    Model two = train(dir.resolve("two"), 2, false, messages);
    assertThat(values(two, "fc1.bias")).as("unfrozen in epoch 2").isNotEqualTo(values(base, "fc1.bias"));
    assertThat(values(two, "fc1.weight")).as("never trained").isEqualTo(values(base, "fc1.weight"));
    assertThat(messages).containsExactly("epoch 2 trains 2 parameter tensors (was 1)");

    assertThatThrownBy(() -> train(dir.resolve("two"), 2, true, new ArrayList<>()))
        .hasMessageContaining("--resume cannot continue a run whose trainable set changes by epoch");
  }

  @Test
  void unpadsOnlyWhereSomeBatchHasPadding() {
    TaskBatch full = maskBatch(1, 1, 1, 1);
    TaskBatch padded = maskBatch(1, 1, 1, 0);
    assertThat(TrainingLoop.anyPadding(List.of(full, full))).isFalse();
    assertThat(TrainingLoop.anyPadding(List.of(full, padded))).isTrue();
    // No attention mask to tell by: the trainer decides (a model without one moves nothing).
    TaskBatch unmasked = TaskBatch.of(Map.of("x", DenseTensor.ofFloats("x", new long[] {1, 2}, new float[2])), 1);
    assertThat(TrainingLoop.anyPadding(List.of(full, unmasked))).isTrue();
  }

  private static TaskBatch maskBatch(long... mask) {
    return TaskBatch.of(
        Map.of("attention_mask", DenseTensor.ofLongs("attention_mask", new long[] {2, mask.length / 2}, mask)), 2);
  }
}
