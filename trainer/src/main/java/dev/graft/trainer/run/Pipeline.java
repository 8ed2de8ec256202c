package dev.graft.trainer.run;

import static com.google.common.base.Preconditions.checkArgument;

import ai.onnxruntime.OrtException;
import dev.graft.ir.Model;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.ir.io.ModelIO;
import dev.graft.rewrite.PassManager;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.recipe.Recipe;
import dev.graft.rewrite.recipe.Stage;
import dev.graft.trainer.task.Task;
import dev.graft.trainer.task.TaskHead;
import dev.graft.trainer.train.Int8Dequantization;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

/**
 * A fine-tuning run, end to end: the task reads its data, the model is loaded and upgraded to the
 * working opset once, each of the recipe's stages applies its passes (then the task's head where
 * the model lacks the task's output, then the stage's Taylor selection), the {@link TrainingLoop}
 * trains, and the task decides what the saved model keeps.
 *
 * <pre>
 *   RUN_DIR/tuned.onnx          the adapted model with its trained weights (task, labels in metadata)
 *   RUN_DIR/metrics.jsonl       a line per step (type "step") and per epoch (train_loss, test_*)
 *   RUN_DIR/metrics.svg         loss per step (smoothed), test loss and the headline metric per epoch
 *   RUN_DIR/checkpoint.safetensors  trainables, AdamW moments and step
 *   RUN_DIR/test-split.jsonl    the held-out examples, when the task split them off the training data
 * </pre>
 *
 * <pre>{@code
 * RunConfig config = RunConfig.builder(List.of(train), tokenizer, Path.of("runs/a")).epochs(1).build();
 * RunResult r = new Pipeline(config, RunListener.SILENT)
 *     .run(model, Recipe.load(Path.of("examples/recipes/lora.yaml")), new ClassifyTask(HeadKind.MEAN));
 * }</pre>
 *
 * Stages run in order, each on the model the one before trained, with a fresh optimizer on their
 * part of one run-wide learning-rate schedule; metrics.jsonl numbers epochs across stages.
 * Multi-stage runs neither resume nor stop early. Every file is written to a temporary name and
 * moved into place.
 */
public final class Pipeline {
  private final RunConfig config;
  private final RunListener listener;
  private TrainableSchedule trainableSchedule = TrainableSchedule.FIXED;

  public Pipeline(RunConfig config, RunListener listener) {
    this.config = config;
    this.listener = listener;
  }

  /** Changes the trainable set from epoch to epoch within each stage (gradual unfreezing). */
  public Pipeline trainableSchedule(TrainableSchedule s) {
    this.trainableSchedule = s;
    return this;
  }

  public RunResult run(Path baseModel, Recipe recipe, Task task) throws OrtException {
    if (recipe.unfreeze().isPresent()) trainableSchedule = new GradualUnfreezing(recipe.unfreeze().get());
    return run(baseModel, recipe.stages(), task);
  }

  /**
   * Loads {@code file} through {@link WorkingModels}, the load rewrite, train and export share,
   * and tells the listener when it upgraded the model to the working opset.
   */
  public static Model load(Path file, RunListener listener) {
    Model model = ModelIO.load(file);
    WorkingModels.toWorkingOpset(model)
        .ifPresent(r -> listener.message(r.toString().lines().findFirst().orElse("")));
    return model;
  }

  /**
   * No recipe: the backbone stays frozen and only the task's head trains, for the run's epochs
   * (the baseline a recipe is compared against). A task that adds no head has nothing to train.
   */
  public RunResult runHeadOnly(Path baseModel, Task task) throws OrtException {
    return runStages(baseModel, List.of(), task);
  }

  public RunResult run(Path baseModel, List<Stage> stages, Task task) throws OrtException {
    checkArgument(!stages.isEmpty(), "A run needs at least one stage");
    return runStages(baseModel, stages, task);
  }

  /** The stages in order; none is one stage of no passes (head only). */
  private RunResult runStages(Path baseModel, List<Stage> given, Task task) throws OrtException {
    List<Optional<Stage>> stages =
        given.isEmpty() ? List.of(Optional.empty()) : given.stream().map(Optional::of).toList();
    if (stages.size() > 1 && (config.resume() || config.stopAfterEpoch() > 0)) {
      throw new IllegalArgumentException(
          "--resume and --stop-after work with one-stage recipes only: this recipe has " + stages.size()
              + " stages, each built on the model the one before trained (a Taylor selection scores that"
              + " model), and the checkpoint holds only the stage in progress. Run all stages in one go.");
    }
    createDirectories(config.out());
    listener.message(task.load(config.data()));
    Model model = load(baseModel, listener);
    // A dynamically int8-quantised model has no float linear for a module pass to find and nothing
    // to differentiate through: a recipe trains its float form (exactly the values its int8 weights
    // stand for). A head alone trains on the int8 backbone's output, which stays as it is.
    if (!given.isEmpty()) {
      Int8Dequantization.Report dequantized = Int8Dequantization.apply(model);
      if (dequantized.any()) listener.message(dequantized.summary());
    }
    int totalEpochs = stages.stream().mapToInt(st -> st.map(x -> x.epochsOr(config.epochs())).orElse(config.epochs())).sum();
    MetricsLog log = new MetricsLog(config.out(), "Graft fine-tuning (" + task.name() + ")");
    TrainingLoop loop = new TrainingLoop(config, listener, trainableSchedule);
    long trainable = 0;
    int epochsBefore = 0;
    for (int i = 0; i < stages.size(); i++) {
      Optional<Stage> stage = stages.get(i);
      int epochs = stage.map(x -> x.epochsOr(config.epochs())).orElse(config.epochs());
      if (stages.size() > 1) {
        listener.message(String.format("stage %d/%d (%s): %d epochs", i + 1, stages.size(), stage.get().name(), epochs));
      }
      if (stage.isEmpty()) listener.message("no recipe: the backbone stays frozen; only the task's head trains");
      for (PassResult r : new PassManager(stage.map(Stage::passes).orElse(com.google.common.collect.ImmutableList.of())).run(model)) {
        listener.message(r.summary());
      }
      Optional<TaskHead> head = task.head(model);
      if (head.isPresent()) {
        listener.message("head: " + head.get().reason());
        for (PassResult r : new PassManager(List.of(head.get().pass())).run(model)) listener.message(r.summary());
      }
      if (stage.isPresent() && stage.get().taylor().isPresent()) {
        TaylorStage.select(model, stage.get().taylor().get(), task, config.seed(), listener);
      }
      task.describe(model);
      trainable = TrainableRegistry.parameterCount(model);
      listener.message(String.format("trainable parameters: %,d", trainable));
      model = loop.train(model, task, new TrainingLoop.Span(i + 1, epochsBefore, epochs, totalEpochs), log);
      epochsBefore += epochs;
    }
    model = task.finish(model);
    Path out = config.out().resolve(TextClassificationRun.TUNED);
    // Training changes no frozen weight: a model read from external data keeps them there, and the
    // run folder hard-links those data files (OUT.base.data) instead of copying them.
    List<String> links = ModelIO.saveWithLinkedData(model, out);
    listener.message("wrote " + out + (links.isEmpty() ? "" : " (frozen weights hard-linked: " + String.join(", ", links) + ")"));
    return new RunResult(out, log.epochs(), trainable, task.name());
  }

  private static void createDirectories(Path dir) {
    try {
      Files.createDirectories(dir);
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot create the run folder " + dir, e);
    }
  }
}
