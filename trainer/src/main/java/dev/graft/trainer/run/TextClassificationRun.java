package dev.graft.trainer.run;

import static com.google.common.base.Preconditions.checkArgument;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMap;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.convert.OpsetUpgrade;
import dev.graft.ir.infer.ShapeInference;
import dev.graft.ir.io.AtomicFiles;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.GraphPass;
import dev.graft.rewrite.PassManager;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.recipe.Recipe;
import dev.graft.rewrite.recipe.Stage;
import dev.graft.rewrite.recipe.TaylorSelection;
import dev.graft.trainer.data.Batch;
import dev.graft.trainer.data.Batcher;
import dev.graft.trainer.data.EncodedExample;
import dev.graft.trainer.data.LabelMap;
import dev.graft.trainer.data.Split;
import dev.graft.trainer.data.TextDatasets;
import dev.graft.trainer.data.TextExample;
import dev.graft.trainer.data.WordPieceTokenizer;
import dev.graft.trainer.eval.ClassificationMetrics;
import dev.graft.trainer.eval.Evaluator;
import dev.graft.trainer.taylor.TaylorScores;
import dev.graft.trainer.train.AdamW;
import dev.graft.trainer.train.EvalResult;
import dev.graft.trainer.train.Loss;
import dev.graft.trainer.train.LrSchedule;
import dev.graft.trainer.train.StepResult;
import dev.graft.trainer.train.TrainStepGraph;
import dev.graft.trainer.train.Trainer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.LongBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Fine-tunes a text classifier end to end: load the model, upgrade it to the working opset,
 * graft the recipe's modules (a classification head among them), train only the grafted
 * parameters on ONNX Runtime, evaluate every epoch, and write the run folder:
 *
 * <pre>
 *   RUN_DIR/tuned.onnx          the adapted model with its trained weights (labels in metadata)
 *   RUN_DIR/metrics.jsonl       a line per epoch: epoch, train_loss, test_accuracy, ...
 *   RUN_DIR/metrics.svg         loss and accuracy per epoch
 *   RUN_DIR/checkpoint.safetensors  trainables, AdamW moments and step, after the last epoch
 *   RUN_DIR/test-split.jsonl    the held-out examples, when the run split them off the training data
 * </pre>
 *
 * A recipe of several {@link Stage}s (the two-stage paradigm: LayerNorm-affine and a head, then
 * Taylor-selected channels) trains them in turn on one model: each stage's passes, and its
 * Taylor selection scored on the model the stage before trained, join the trainables, and
 * everything trains on with a fresh optimizer and schedule; metrics.jsonl numbers the epochs
 * across stages and names each one's {@code stage}.
 *
 * <p>Every file is written to a temporary name and moved into place. With {@code resume}, the run
 * restores the checkpoint and continues after the epochs metrics.jsonl already lists; the
 * shuffling of epoch e depends only on the seed and e, so a resumed run sees the batches an
 * uninterrupted one would. Multi-stage runs neither resume nor stop early (see
 * {@link #runStages}).
 */
public final class TextClassificationRun {
  /** Model metadata key holding the label names in class-id order. */
  public static final String LABELS_KEY = Evaluator.LABELS_METADATA_KEY;

  public static final String TUNED = "tuned.onnx";
  public static final String METRICS = "metrics.jsonl";
  public static final String PLOT = "metrics.svg";
  public static final String CHECKPOINT = "checkpoint.safetensors";
  /** The held-out split, written when the run made it from the training data. */
  public static final String TEST_SPLIT = "test-split.jsonl";

  private static final String LOGITS = "logits";
  private static final String LABELS = "labels";

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

  /** Runs the passes on {@code baseModel} and trains: a one-stage run; see the class comment. */
  public Result run(Path baseModel, List<GraphPass> passes) throws OrtException {
    return runStages(baseModel, List.of(Stage.of("training", passes)));
  }

  /** Runs a recipe's stages ({@link Recipe#stages()}) on {@code baseModel}. */
  public Result run(Path baseModel, Recipe recipe) throws OrtException {
    return runStages(baseModel, recipe.stages());
  }

  /**
   * Runs the stages in order, each on the model the one before trained: apply the stage's
   * passes, resolve its Taylor selection (if any) on that model, then train every trainable
   * parameter so far, the earlier stages' from their trained values, with a fresh optimizer and
   * learning-rate schedule, for the stage's epochs. Epochs count on across stages in
   * metrics.jsonl, each line naming its stage; tuned.onnx holds the last stage's model.
   */
  public Result runStages(Path baseModel, List<Stage> stages) throws OrtException {
    checkArgument(!stages.isEmpty(), "A run needs at least one stage");
    if (stages.size() > 1 && (config.resume() || config.stopAfterEpoch() > 0)) {
      throw new IllegalArgumentException(
          "--resume and --stop-after work with one-stage recipes only: this recipe has " + stages.size()
              + " stages, each built on the model the one before trained (a Taylor selection scores that"
              + " model), and the checkpoint holds only the stage in progress. Run all stages in one go.");
    }
    createDirectories(config.out());
    Data data = loadData();
    listener.message(
        String.format(
            "data: %d train and %d test examples, labels %s",
            data.train.size(), data.test.size(), data.labels.labels()));

    List<EncodedExample> train;
    List<EncodedExample> test;
    long padId;
    try (WordPieceTokenizer tok = WordPieceTokenizer.load(config.tokenizer(), config.maxLength())) {
      train = tok.encodeAll(data.train, data.labels);
      test = tok.encodeAll(data.test, data.labels);
      padId = tok.padId();
    }
    Batcher batcher = new Batcher(config.batchSize(), config.maxLength(), padId);
    List<Batch> testBatches = batcher.batches(test);

    Model model = ModelIO.load(baseModel);
    if (model.defaultOpset().orElse(0) < OpsetUpgrade.WORKING_OPSET) {
      listener.message(OpsetUpgrade.upgrade(model).toString().lines().findFirst().orElse(""));
    }
    List<String> inputs =
        model.graph().inputs().stream().filter(v -> !v.isInitializer()).map(Value::name).toList();
    int totalEpochs = stages.stream().mapToInt(st -> st.epochsOr(config.epochs())).sum();
    Training run = new Training(train, testBatches, batcher, inputs, data.labels, totalEpochs);
    long trainable = 0;
    for (int i = 0; i < stages.size(); i++) {
      Stage stage = stages.get(i);
      if (stages.size() > 1) {
        listener.message(
            String.format("stage %d/%d (%s): %d epochs", i + 1, stages.size(), stage.name(), stage.epochsOr(config.epochs())));
      }
      for (PassResult r : new PassManager(stage.passes()).run(model)) {
        listener.message(r.summary());
      }
      if (stage.taylor().isPresent()) {
        selectChannels(model, stage.taylor().get(), batcher.shuffled(train, config.seed()), inputs);
      }
      model.putMetadata(LABELS_KEY, data.labels.encode());
      trainable = TrainableRegistry.parameterCount(model);
      listener.message(String.format("trainable parameters: %,d", trainable));
      model = run.stage(model, i + 1, stage.epochsOr(config.epochs()));
    }
    model.putMetadata(LABELS_KEY, data.labels.encode());
    Path out = config.out().resolve(TUNED);
    ModelIO.save(model, out);
    listener.message("wrote " + out);
    return new Result(out, ImmutableList.copyOf(run.history), trainable, data.labels);
  }

  /**
   * Resolves a Taylor selection on {@code model} as it is now (the earlier stages' trained
   * values in place): scores the selected modules' output channels by the cross-entropy of the
   * model's logits on the first training batches, keeps the top fraction of each, and applies
   * the channel pass with those lists.
   */
  private void selectChannels(Model model, TaylorSelection select, List<Batch> shuffled, List<String> inputs)
      throws OrtException {
    ImmutableList<String> modules = select.modules(model);
    // The loss goes on a copy: the model keeps its outputs, and the trainer appends its own.
    Model scored = model.copy();
    ShapeInference.infer(scored);
    Graph g = scored.graph();
    Value logits =
        g.outputs().stream()
            .filter(o -> o.name().equals(LOGITS))
            .findFirst()
            .orElseThrow(
                () ->
                    new IllegalArgumentException(
                        "taylor-channels: scoring channels needs the loss, which reads the model's '" + LOGITS
                            + "' output, and the model has none (its outputs are "
                            + g.outputs().stream().map(Value::name).toList()
                            + "). Add a classification-head in this stage or an earlier one."));
    checkArgument(
        g.lookup(LABELS).isEmpty(), "The model already has a value '%s'; the loss needs that name for its labels", LABELS);
    Loss loss = Loss.crossEntropy();
    Value labels = g.addInput(LABELS, loss.labelType(logits));
    Value lossValue = loss.append(GraphBuilder.on(g).atEnd().prefix("/graft/taylor_loss"), logits, labels);

    List<Batch> batches = shuffled.subList(0, Math.min(select.batches(), shuffled.size()));
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    List<Map<String, OnnxTensor>> feeds = new ArrayList<>();
    TaylorScores scores;
    try {
      for (Batch b : batches) {
        Map<String, OnnxTensor> f = new LinkedHashMap<>();
        feeds.add(f);
        for (Map.Entry<String, Tensor> e : feeds(b, inputs, true).entrySet()) {
          long[] data = e.getValue().toLongArray();
          f.put(e.getKey(), OnnxTensor.createTensor(env, LongBuffer.wrap(data), e.getValue().dims()));
        }
      }
      scores = TaylorScores.forModules(scored, lossValue.name(), modules, feeds);
    } finally {
      feeds.forEach(f -> f.values().forEach(OnnxTensor::close));
    }
    ImmutableMap<String, ImmutableList<Integer>> top = scores.top(select.fraction());
    StringBuilder kept = new StringBuilder();
    for (String m : top.keySet()) {
      kept.append(kept.length() == 0 ? "" : ", ")
          .append(m).append(' ').append(top.get(m).size()).append('/').append(scores.scores(m).length);
    }
    listener.message(
        String.format(
            "taylor-channels: scored %d modules on %d batches (%d examples); kept the top %s of each: %s",
            modules.size(), batches.size(), batches.stream().mapToInt(Batch::size).sum(),
            fraction(select.fraction()), kept));
    for (PassResult r : new PassManager(List.of(select.pass(top))).run(model)) {
      listener.message(r.summary());
    }
  }

  /** 0.125 as 1/8; other shares as they are. */
  private static String fraction(double f) {
    double inverse = 1 / f;
    return Math.abs(inverse - Math.rint(inverse)) < 1e-9 ? "1/" + (long) Math.rint(inverse) : Double.toString(f);
  }

  /** What every stage's training shares: the data, the epoch count so far, and the history. */
  private final class Training {
    final List<EncodedExample> train;
    final List<Batch> testBatches;
    final Batcher batcher;
    final List<String> inputs;
    final LabelMap labels;
    final int totalEpochs;
    final List<EpochMetrics> history = new ArrayList<>();
    int epochsDone;

    Training(
        List<EncodedExample> train, List<Batch> testBatches, Batcher batcher, List<String> inputs, LabelMap labels,
        int totalEpochs) {
      this.train = train;
      this.testBatches = testBatches;
      this.batcher = batcher;
      this.inputs = inputs;
      this.labels = labels;
      this.totalEpochs = totalEpochs;
    }


    /**
     * Trains every trainable of {@code model} for {@code epochs} with a fresh AdamW and schedule;
     * returns the model with the trained values.
     */
    Model stage(Model model, int stage, int epochs) throws OrtException {
      int batchesPerEpoch = (train.size() + config.batchSize() - 1) / config.batchSize();
      TrainStepGraph graphs =
          TrainStepGraph.builder(model)
              .logits(LOGITS)
              .labels(LABELS)
              .loss(Loss.crossEntropy())
              .optimizer(new AdamW(0.9, 0.999, 1e-8, config.weightDecay(), AdamW.defaults().decayOn()))
              .clipGradNorm(config.clipGradNorm())
              .build();
      LrSchedule schedule =
          stageSchedule(config.learningRate(), config.warmupFraction(), batchesPerEpoch, totalEpochs, epochsDone, epochs);
      Path checkpoint = config.out().resolve(CHECKPOINT);
      try (Trainer trainer =
          Trainer.builder(graphs)
              .schedule(schedule)
              .device(config.device())
              .intraOpThreads(config.threads())
              .build()) {
        int firstEpoch = 1;
        // Only one-stage runs resume (runStages refuses the rest), so the history is this stage's.
        if (config.resume()) {
          history.addAll(readMetrics(config.out().resolve(METRICS)));
          if (!history.isEmpty()) {
            if (!Files.exists(checkpoint)) {
              throw new IllegalStateException(
                  "Cannot resume: " + config.out().resolve(METRICS) + " lists " + history.size()
                      + " epochs but " + checkpoint + " is missing. Start a fresh run without --resume.");
            }
            trainer.loadCheckpoint(checkpoint);
            firstEpoch = history.size() + 1;
            listener.message("resumed after epoch " + history.size() + " (step " + trainer.step() + ")");
          }
        }
        int lastEpoch = config.stopAfterEpoch() > 0 ? Math.min(config.stopAfterEpoch(), epochs) : epochs;
        for (int e = firstEpoch; e <= lastEpoch; e++) {
          int epoch = epochsDone + e;
          long start = System.nanoTime();
          List<Batch> batches = batcher.shuffled(train, config.seed() + epoch);
          double lossSum = 0;
          long seen = 0;
          for (int i = 0; i < batches.size(); i++) {
            Batch b = batches.get(i);
            StepResult r = trainer.trainStep(feeds(b, inputs, true));
            lossSum += r.loss() * b.size();
            seen += b.size();
            double secs = (System.nanoTime() - start) / 1e9;
            listener.step(epoch, totalEpochs, i + 1, batches.size(), lossSum / seen, seen / secs);
          }
          double trainSeconds = (System.nanoTime() - start) / 1e9;
          Evaluation ev = evaluate(trainer, testBatches, inputs, labels);
          EpochMetrics m =
              new EpochMetrics(
                  epoch,
                  stage,
                  lossSum / Math.max(1, seen),
                  ev.metrics.accuracy(),
                  ev.metrics.macroF1(),
                  ev.loss,
                  (System.nanoTime() - start) / 1e9,
                  seen / trainSeconds);
          history.add(m);
          trainer.saveCheckpoint(checkpoint);
          writeMetrics(history);
          listener.epoch(m);
        }
        epochsDone += epochs;
        return trainer.exportTrainedModel();
      }
    }
  }

  private record Data(List<TextExample> train, List<TextExample> test, LabelMap labels) {}

  private Data loadData() {
    List<TextExample> train = new ArrayList<>();
    for (Path p : config.train()) train.addAll(TextDatasets.read(p, config.textColumn(), config.labelColumn()));
    List<TextExample> test = new ArrayList<>();
    for (Path p : config.test()) test.addAll(TextDatasets.read(p, config.textColumn(), config.labelColumn()));
    if (test.isEmpty()) {
      Split<TextExample> split =
          Split.stratified(train, config.testFraction(), config.seed(), TextExample::label);
      train = split.train();
      test = split.validation();
      TextDatasets.writeJsonl(config.out().resolve(TEST_SPLIT), test);
    }
    List<TextExample> all = new ArrayList<>(train);
    all.addAll(test);
    return new Data(train, test, LabelMap.ofExamples(all));
  }

  private record Evaluation(ClassificationMetrics metrics, double loss) {}

  private static Evaluation evaluate(Trainer trainer, List<Batch> batches, List<String> inputs, LabelMap labels)
      throws OrtException {
    List<float[]> logits = new ArrayList<>();
    List<Integer> truth = new ArrayList<>();
    double lossSum = 0;
    long n = 0;
    for (Batch b : batches) {
      EvalResult r = trainer.evalStep(feeds(b, inputs, true));
      float[] flat = r.logits().toFloatArray();
      int k = flat.length / b.size();
      for (int i = 0; i < b.size(); i++) {
        float[] row = new float[k];
        System.arraycopy(flat, i * k, row, 0, k);
        logits.add(row);
        truth.add((int) b.labels()[i]);
      }
      lossSum += r.loss() * b.size();
      n += b.size();
    }
    int[] y = truth.stream().mapToInt(Integer::intValue).toArray();
    ClassificationMetrics m =
        ClassificationMetrics.of(y, logits.toArray(new float[0][]), labels.labels());
    return new Evaluation(m, lossSum / Math.max(1, n));
  }

  /** The batch as the model's inputs (only those it declares) plus the labels. */
  static Map<String, Tensor> feeds(Batch b, List<String> inputs, boolean withLabels) {
    Map<String, Tensor> f = new LinkedHashMap<>();
    long[] shape = b.shape();
    for (String name : inputs) {
      long[] data =
          switch (name) {
            case Evaluator.INPUT_IDS -> b.inputIds();
            case Evaluator.ATTENTION_MASK -> b.attentionMask();
            case Evaluator.TOKEN_TYPE_IDS -> b.tokenTypeIds();
            default ->
                throw new IllegalArgumentException(
                    "The model has an input '" + name + "' that text batches cannot fill; text"
                        + " models take input_ids, attention_mask and token_type_ids.");
          };
      f.put(name, DenseTensor.ofLongs(name, shape, data));
    }
    if (withLabels) f.put("labels", DenseTensor.ofLongs("labels", new long[] {b.size()}, b.labels()));
    return f;
  }

  private void writeMetrics(List<EpochMetrics> history) {
    StringBuilder jsonl = new StringBuilder();
    for (EpochMetrics m : history) jsonl.append(m.toJson()).append('\n');
    AtomicFiles.writeString(config.out().resolve(METRICS), jsonl.toString());
    AtomicFiles.writeString(config.out().resolve(PLOT), MetricsPlot.svg("Graft fine-tuning", history));
  }

  static List<EpochMetrics> readMetrics(Path file) {
    if (!Files.exists(file)) return List.of();
    try {
      List<EpochMetrics> out = new ArrayList<>();
      for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
        if (line.isBlank()) continue;
        JsonObject o = JsonParser.parseString(line).getAsJsonObject();
        out.add(EpochMetrics.fromJson(o));
      }
      return out;
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot read " + file, e);
    }
  }

  private static void createDirectories(Path dir) {
    try {
      Files.createDirectories(dir);
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot create the run folder " + dir, e);
    }
  }

  /**
   * A stage's part of ONE schedule over the whole run: linear warm-up over the first
   * {@code warmupFraction} of all stages' steps, then linear decay to 0 at the run's last step. A
   * later stage so continues at the rate the run had reached instead of warming up again at the
   * peak rate (which undid stage one's progress). For a one-stage run this is the plain schedule.
   */
  static LrSchedule stageSchedule(
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
