package dev.graft.trainer.run;

import ai.onnxruntime.OrtException;
import com.google.common.collect.ImmutableList;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.convert.OpsetUpgrade;
import dev.graft.ir.io.AtomicFiles;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.GraphPass;
import dev.graft.rewrite.PassManager;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.TrainableRegistry;
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
import dev.graft.trainer.train.AdamW;
import dev.graft.trainer.train.EvalResult;
import dev.graft.trainer.train.Loss;
import dev.graft.trainer.train.LrSchedule;
import dev.graft.trainer.train.StepResult;
import dev.graft.trainer.train.TrainStepGraph;
import dev.graft.trainer.train.Trainer;
import java.io.IOException;
import java.io.UncheckedIOException;
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
 * Every file is written to a temporary name and moved into place. With {@code resume}, the run
 * restores the checkpoint and continues after the epochs metrics.jsonl already lists; the
 * shuffling of epoch e depends only on the seed and e, so a resumed run sees the batches an
 * uninterrupted one would.
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

  /** Runs the passes on {@code baseModel} and trains; see the class comment for what it writes. */
  public Result run(Path baseModel, List<GraphPass> passes) throws OrtException {
    createDirectories(config.out());
    Data data = loadData();
    listener.message(
        String.format(
            "data: %d train and %d test examples, labels %s",
            data.train.size(), data.test.size(), data.labels.labels()));

    Model model = ModelIO.load(baseModel);
    if (model.defaultOpset().orElse(0) < OpsetUpgrade.WORKING_OPSET) {
      listener.message(OpsetUpgrade.upgrade(model).toString().lines().findFirst().orElse(""));
    }
    for (PassResult r : new PassManager(passes).run(model)) {
      listener.message(r.summary());
    }
    model.putMetadata(LABELS_KEY, data.labels.encode());
    long trainable = TrainableRegistry.parameterCount(model);
    listener.message(String.format("trainable parameters: %,d", trainable));

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
    int batchesPerEpoch = (train.size() + config.batchSize() - 1) / config.batchSize();
    long totalSteps = (long) batchesPerEpoch * config.epochs();

    TrainStepGraph graphs =
        TrainStepGraph.builder(model)
            .logits("logits")
            .labels("labels")
            .loss(Loss.crossEntropy())
            .optimizer(
                new AdamW(0.9, 0.999, 1e-8, config.weightDecay(), AdamW.defaults().decayOn()))
            .clipGradNorm(config.clipGradNorm())
            .build();
    List<String> inputs =
        model.graph().inputs().stream().filter(v -> !v.isInitializer()).map(Value::name).toList();
    LrSchedule schedule =
        LrSchedule.linear(
            config.learningRate(), Math.round(config.warmupFraction() * totalSteps), totalSteps, 0);

    List<EpochMetrics> history = new ArrayList<>();
    Path checkpoint = config.out().resolve(CHECKPOINT);
    try (Trainer trainer =
        Trainer.builder(graphs)
            .schedule(schedule)
            .device(config.device())
            .intraOpThreads(config.threads())
            .build()) {
      int firstEpoch = 1;
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
      int lastEpoch =
          config.stopAfterEpoch() > 0 ? Math.min(config.stopAfterEpoch(), config.epochs()) : config.epochs();
      for (int epoch = firstEpoch; epoch <= lastEpoch; epoch++) {
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
          listener.step(epoch, config.epochs(), i + 1, batches.size(), lossSum / seen, seen / secs);
        }
        double trainSeconds = (System.nanoTime() - start) / 1e9;
        Evaluation ev = evaluate(trainer, testBatches, inputs, data.labels);
        EpochMetrics m =
            new EpochMetrics(
                epoch,
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
      Model tuned = trainer.exportTrainedModel();
      tuned.putMetadata(LABELS_KEY, data.labels.encode());
      Path out = config.out().resolve(TUNED);
      ModelIO.save(tuned, out);
      listener.message("wrote " + out);
      return new Result(out, ImmutableList.copyOf(history), trainable, data.labels);
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
}
