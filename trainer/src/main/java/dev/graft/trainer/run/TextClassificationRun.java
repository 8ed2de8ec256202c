package dev.graft.trainer.run;

import ai.onnxruntime.OrtException;
import com.google.common.collect.ImmutableList;
import dev.graft.rewrite.GraphPass;
import dev.graft.rewrite.recipe.Recipe;
import dev.graft.rewrite.recipe.Stage;
import dev.graft.trainer.data.LabelMap;
import dev.graft.trainer.eval.Evaluator;
import dev.graft.trainer.task.ClassifyTask;
import dev.graft.trainer.task.DataConfig;
import dev.graft.trainer.task.HeadKind;
import dev.graft.trainer.train.LrSchedule;
import java.nio.file.Path;
import java.util.List;

/**
 * Text classification through the {@link Pipeline} with a {@link ClassifyTask} (a mean-pooling
 * head where the recipe adds none), kept for the callers written before tasks, and the home of the
 * run folder's file names.
 */
public final class TextClassificationRun {
  /** Model metadata key holding the label names in class-id order. */
  public static final String LABELS_KEY = Evaluator.LABELS_METADATA_KEY;

  public static final String TUNED = "tuned.onnx";
  public static final String METRICS = "metrics.jsonl";
  public static final String PLOT = "metrics.svg";
  public static final String CHECKPOINT = "checkpoint.safetensors";
  /** The held-out split, written when the run made it from the training data. */
  public static final String TEST_SPLIT = DataConfig.TEST_SPLIT;

  /** What a finished run produced. */
  public record Result(
      Path tunedModel, ImmutableList<EpochMetrics> epochs, long trainableParameters, LabelMap labels) {
    public EpochMetrics last() {
      return epochs.get(epochs.size() - 1);
    }
  }

  private final RunConfig config;
  private final RunListener listener;

  public TextClassificationRun(RunConfig config, RunListener listener) {
    this.config = config;
    this.listener = listener;
  }

  /** Runs the passes on {@code baseModel} and trains: a one-stage run. */
  public Result run(Path baseModel, List<GraphPass> passes) throws OrtException {
    return runStages(baseModel, List.of(Stage.of("training", passes)));
  }

  /** Runs a recipe's stages ({@link Recipe#stages()}) on {@code baseModel}. */
  public Result run(Path baseModel, Recipe recipe) throws OrtException {
    return runStages(baseModel, recipe.stages());
  }

  public Result runStages(Path baseModel, List<Stage> stages) throws OrtException {
    ClassifyTask task = new ClassifyTask(HeadKind.MEAN, config.seed());
    RunResult r = new Pipeline(config, listener).run(baseModel, stages, task);
    return new Result(r.tunedModel(), r.epochs(), r.trainableParameters(), task.labels());
  }

  /** See {@link TrainingLoop#stageSchedule}. */
  static LrSchedule stageSchedule(
      double peak, double warmupFraction, int batchesPerEpoch, int totalEpochs, int epochsBefore, int epochs) {
    return TrainingLoop.stageSchedule(peak, warmupFraction, batchesPerEpoch, totalEpochs, epochsBefore, epochs);
  }
}
