package dev.graft.trainer.run;

import static com.google.common.base.Preconditions.checkArgument;

import ai.onnxruntime.OrtException;
import com.google.common.collect.ImmutableList;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.tensor.Tensor;
import dev.graft.trainer.task.Evaluation;
import dev.graft.trainer.task.Objective;
import dev.graft.trainer.task.Task;
import dev.graft.trainer.task.TaskBatch;
import dev.graft.trainer.train.AdamW;
import dev.graft.trainer.train.LrSchedule;
import dev.graft.trainer.train.StepResult;
import dev.graft.trainer.train.TrainStepGraph;
import dev.graft.trainer.train.Trainer;
import dev.graft.trainer.train.Trainables;
import dev.graft.trainer.train.Unpadding;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * The generic training loop over {@link Trainer}: epochs, the learning-rate schedule, checkpoints
 * (every {@link RunConfig#checkpointEvery} steps and after every epoch), resume, progress, the
 * per-step and per-epoch metrics. It knows nothing of the task: the {@link Task} gives the
 * objective graph, the batches (opaque maps of tensors) and the evaluation.
 *
 * <pre>
 *   objective = task.objective(model)                  graph + output + labels + loss
 *   for epoch:  trainables = schedule.trainables(...)  (gradual unfreezing hook)
 *               for batch in task.trainBatches(seed + epoch):  trainer.trainStep(batch.feeds)
 *                   every N steps: metrics.jsonl, then checkpoint
 *               task.evaluate(trainer); metrics.jsonl, then checkpoint
 *   return model with the trained values               (the objective's extras never leak)
 * </pre>
 *
 * Resume reads the checkpoint's step: the epochs it completes are skipped, and in the epoch it
 * falls in the batches before it (the order depends only on the seed and the epoch) are skipped
 * too, so a run killed mid-epoch repeats at most {@code checkpointEvery} steps.
 */
public final class TrainingLoop {
  /** Which epochs of the run a stage trains. */
  public record Span(int stage, int epochsBefore, int epochs, int totalEpochs) {
    public Span {
      checkArgument(epochs >= 1 && epochsBefore >= 0 && epochsBefore + epochs <= totalEpochs,
          "stage %s trains epochs %s..%s of %s", stage, epochsBefore + 1, epochsBefore + epochs, totalEpochs);
    }
  }

  private final RunConfig config;
  private final RunListener listener;
  private final TrainableSchedule schedule;
  /** Whether the train steps unpad: asked for ({@code --no-unpad} not given) and the data has padding. */
  private boolean unpad;

  public TrainingLoop(RunConfig config, RunListener listener, TrainableSchedule schedule) {
    this.config = config;
    this.listener = listener;
    this.schedule = schedule;
  }

  /**
   * Trains {@code model}'s trainables (those its metadata lists) on {@code task} for the span's
   * epochs and returns {@code model} with the trained values written into its initializers.
   */
  public Model train(Model model, Task task, Span span, MetricsLog log) throws OrtException {
    Path checkpoint = config.out().resolve(TextClassificationRun.CHECKPOINT);
    // The objective first: a task learns the graph's inputs from it before it makes batches.
    Objective objective = task.objective(model);
    List<TaskBatch> epochOne = task.trainBatches(config.seed() + span.epochsBefore() + 1);
    int batchesPerEpoch = epochOne.size();
    // Padding-free only pays where batches have padding: not on packed blocks (causal-lm) or
    // texts of one length, where its gathers and scatters would only cost.
    unpad = config.unpad() && anyPadding(epochOne);
    List<String> trainables = Trainables.fromMetadata(model);
    Trainer trainer = open(objective, trainables, schedule(batchesPerEpoch, span, 0));
    try {
      int firstEpoch = 1;
      long skip = 0;
      if (config.resume()) {
        checkArgument(schedule == TrainableSchedule.FIXED,
            "--resume cannot continue a run whose trainable set changes by epoch: the checkpoint holds one"
                + " epoch's set. Start the run afresh.");
        log.read();
        if (Files.exists(checkpoint)) {
          trainer.loadCheckpoint(checkpoint);
          long step = trainer.step();
          int done = (int) (step / batchesPerEpoch);
          skip = step % batchesPerEpoch;
          log.truncate(step, done);
          firstEpoch = done + 1;
          listener.message(
              skip == 0
                  ? "resumed after epoch " + done + " (step " + step + ")"
                  : String.format("resumed at step %d: epoch %d, batch %d of %d", step, done + 1, skip + 1, batchesPerEpoch));
        } else if (!log.epochs().isEmpty() || !log.steps().isEmpty()) {
          throw new IllegalStateException(
              "Cannot resume: " + config.out().resolve(TextClassificationRun.METRICS) + " lists training but "
                  + checkpoint + " is missing. Start a fresh run without --resume.");
        }
      }
      int lastEpoch = config.stopAfterEpoch() > 0 ? Math.min(config.stopAfterEpoch(), span.epochs()) : span.epochs();
      for (int e = firstEpoch; e <= lastEpoch; e++) {
        int epoch = span.epochsBefore() + e;
        ImmutableList<String> next = schedule.trainables(e, trainables, withTrained(model, trainer));
        if (!next.equals(ImmutableList.copyOf(trainables))) {
          listener.message(String.format("epoch %d trains %d parameter tensors (was %d)", epoch, next.size(), trainables.size()));
          withTrained(model, trainer);
          trainer.close();
          trainables = next;
          trainer = open(task.objective(model), trainables, schedule(batchesPerEpoch, span, e - 1));
        }
        long start = System.nanoTime();
        List<TaskBatch> batches = task.trainBatches(config.seed() + epoch);
        double lossSum = 0;
        long seen = 0;
        for (StepMetrics s : log.steps()) {
          if (s.epoch() == epoch) {
            lossSum += s.loss() * s.size();
            seen += s.size();
          }
        }
        long fresh = 0;
        for (int i = (int) (e == firstEpoch ? skip : 0); i < batches.size(); i++) {
          TaskBatch b = batches.get(i);
          StepResult r = trainer.trainStep(b.feeds());
          log.add(new StepMetrics(r.step(), epoch, r.loss(), r.learningRate(), b.size()));
          lossSum += r.loss() * b.size();
          seen += b.size();
          fresh += b.size();
          double secs = (System.nanoTime() - start) / 1e9;
          listener.step(epoch, span.totalEpochs(), i + 1, batches.size(), lossSum / seen, fresh / secs);
          if (config.checkpointEvery() > 0 && r.step() % config.checkpointEvery() == 0 && i < batches.size() - 1) {
            log.write();
            trainer.saveCheckpoint(checkpoint);
          }
        }
        double trainSeconds = (System.nanoTime() - start) / 1e9;
        Evaluation ev = task.evaluate(trainer);
        EpochMetrics m =
            new EpochMetrics(
                epoch, span.stage(), lossSum / Math.max(1, seen), ev.loss(), ev.metrics(),
                (System.nanoTime() - start) / 1e9, fresh / Math.max(1e-9, trainSeconds));
        log.add(m);
        log.write();
        trainer.saveCheckpoint(checkpoint);
        listener.epoch(m);
      }
      return withTrained(model, trainer);
    } finally {
      trainer.close();
    }
  }

  private Trainer open(Objective objective, List<String> trainables, LrSchedule lr) throws OrtException {
    TrainStepGraph.Builder b =
        TrainStepGraph.builder(objective.model())
            .logits(objective.output())
            .labels(objective.labels())
            .loss(objective.loss())
            .trainables(trainables)
            .optimizer(new AdamW(0.9, 0.999, 1e-8, config.weightDecay(), AdamW.defaults().decayOn()))
            .clipGradNorm(config.clipGradNorm());
    // Padding-free where the model has an attention_mask input; the trainer checks it on the
    // first padded batch and says what it decided.
    if (unpad) b.unpadWhereMasked();
    return Trainer.builder(b.build())
        .schedule(lr)
        .device(config.device())
        .intraOpThreads(config.threads())
        .notes(listener::message)
        .build();
  }

  /** Whether some batch has a 0 in its {@value Unpadding#DEFAULT_MASK} (or has no such feed to tell by). */
  static boolean anyPadding(List<TaskBatch> batches) {
    for (TaskBatch b : batches) {
      Tensor mask = b.feeds().get(Unpadding.DEFAULT_MASK);
      if (mask == null || Unpadding.hasPadding(mask)) return true;
    }
    return false;
  }

  /** The learning rate from epoch {@code epochsIn} of the span to its end, as part of the run's one schedule. */
  private LrSchedule schedule(int batchesPerEpoch, Span span, int epochsIn) {
    return stageSchedule(
        config.learningRate(), config.warmupFraction(), batchesPerEpoch, span.totalEpochs(),
        span.epochsBefore() + epochsIn, span.epochs() - epochsIn);
  }

  /** Writes the trainer's current parameters into {@code model}'s initializers; returns it. */
  static Model withTrained(Model model, Trainer trainer) {
    Graph g = model.graph();
    for (Map.Entry<String, Tensor> p : trainer.parameters().entrySet()) {
      g.setInitializer(g.initializer(p.getKey()).orElseThrow(), p.getValue());
    }
    return model;
  }

  /**
   * A stage's part of ONE schedule over the whole run: linear warm-up over the first
   * {@code warmupFraction} of all stages' steps, then linear decay to 0 at the run's last step. A
   * later stage so continues at the rate the run had reached instead of warming up again at the
   * peak rate (which undid stage one's progress). For a one-stage run this is the plain schedule.
   */
  public static LrSchedule stageSchedule(
      double peak, double warmupFraction, int batchesPerEpoch, int totalEpochs, int epochsBefore, int epochs) {
    long all = (long) batchesPerEpoch * totalEpochs;
    long warmup = Math.round(warmupFraction * all);
    long start = (long) batchesPerEpoch * epochsBefore;
    long steps = (long) batchesPerEpoch * epochs;
    double end = start + steps >= all ? 0 : peak * (all - start - steps) / (all - warmup);
    if (start == 0) {
      return LrSchedule.linear(peak, Math.min(warmup, steps - 1), steps, end);
    }
    // Past the warm-up the run's rate is linear, so a stage is a straight line between its two
    // ends; a stage that starts inside the warm-up (a very short first stage) starts at the peak.
    double from = start >= warmup ? peak * (all - start) / (all - warmup) : peak;
    return LrSchedule.linear(from, 0, steps, end);
  }
}
