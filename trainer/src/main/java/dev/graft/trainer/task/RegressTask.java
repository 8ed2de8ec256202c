package dev.graft.trainer.task;

import ai.onnxruntime.OrtException;
import com.google.common.collect.ImmutableList;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.GraphPass;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.peft.ClassificationHeadPass;
import dev.graft.trainer.data.Batch;
import dev.graft.trainer.data.BatchOrder;
import dev.graft.trainer.data.Batcher;
import dev.graft.trainer.data.EncodedExample;
import dev.graft.trainer.data.TextExample;
import dev.graft.trainer.data.WordPieceTokenizer;
import dev.graft.trainer.eval.RegressionMetrics;
import dev.graft.trainer.train.EvalResult;
import dev.graft.trainer.train.Loss;
import dev.graft.trainer.train.Trainer;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;

/**
 * Regression on one numeric target per text: a {@code logits [batch, 1]} output, the mean squared
 * error (or the Huber loss), and RMSE, MAE, Pearson and Spearman on the held-out data.
 *
 * <pre>
 *   hidden [b, s, d] --(head: pool, MatMul W [d, 1], Add bias)--> logits [b, 1]
 *   loss = mean((logits - y)^2)          or Huber(delta)
 * </pre>
 *
 * The head's bias starts at the training targets' mean, so training begins at the constant
 * predictor's error rather than at the targets' distance from zero. Labels are read as numbers
 * (a label that is not one is an error naming it); the held-out split, when made, is random.
 */
public final class RegressTask implements Task {
  public static final String NAME = "regress";
  public static final String OUTPUT = ClassificationHeadPass.LOGITS;

  private final HeadKind head;
  private final long seed;
  private final double huberDelta;
  private ImmutableList<EncodedExample> train;
  private float[] trainTargets;
  private ImmutableList<Batch> test;
  private float[] testTargets;
  private Batcher batcher;
  private BatchOrder order;
  private ImmutableList<String> inputs;
  private double mean;

  /** @param huberDelta 0 for the mean squared error, else the Huber loss's threshold */
  public RegressTask(HeadKind head, long seed, double huberDelta) {
    this.head = head;
    this.seed = seed;
    this.huberDelta = huberDelta;
  }

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public String load(DataConfig c) {
    TextData.Parts parts = TextData.read(c, null);
    trainTargets = targets(parts.train(), c);
    testTargets = targets(parts.test(), c);
    double sum = 0;
    for (float t : trainTargets) sum += t;
    mean = sum / trainTargets.length;
    try (WordPieceTokenizer tok = WordPieceTokenizer.load(c.tokenizer(), c.maxLength())) {
      train = TextData.encodeIndexed(tok, parts.train().stream().map(TextExample::text).toList());
      batcher = new Batcher(c.batchSize(), c.maxLength(), tok.padId());
      order = c.batchOrder(batcher);
      test = batcher.batches(TextData.encodeIndexed(tok, parts.test().stream().map(TextExample::text).toList()));
    }
    return String.format(
        Locale.ROOT, "data: %d train and %d test examples, target '%s' with mean %.4f (train)",
        parts.train().size(), parts.test().size(), c.labelColumn(), mean);
  }

  private static float[] targets(List<TextExample> examples, DataConfig c) {
    float[] out = new float[examples.size()];
    for (int i = 0; i < out.length; i++) {
      String label = examples.get(i).label();
      try {
        out[i] = Float.parseFloat(label);
      } catch (NumberFormatException e) {
        out[i] = Float.NaN;
      }
      if (!Float.isFinite(out[i])) {
        throw new IllegalArgumentException(
            "regress reads numeric targets, but the label of example " + (i + 1) + " in column '" + c.labelColumn()
                + "' is '" + label + "'. Fix the data, pick the numeric column with --label-column, or use"
                + " --task classify for categories.");
      }
    }
    return out;
  }

  @Override
  public Optional<TaskHead> head(Model model) {
    Graph g = model.graph();
    boolean present =
        TaskHead.present(g, OUTPUT, 1, columns ->
            "The model's 'logits' output has " + columns + " columns; regression reads one."
                + " Drop the recipe's classification-head and let the task add its own (--head mean).");
    if (present) return Optional.empty();
    List<String> outputs = g.outputs().stream().map(Value::name).toList();
    if (head == HeadKind.NONE) {
      throw new IllegalArgumentException(
          "The model has no 'logits' output to regress with (its outputs are " + outputs + ") and --head none"
              + " adds no head. Use --head mean (or cls, max).");
    }
    ClassificationHeadPass pass =
        new ClassificationHeadPass(ClassificationHeadPass.Config.of(1, head.pooling().orElseThrow()).withSeed(seed));
    return Optional.of(
        new TaskHead(
            new BiasAtMean(pass, (float) mean),
            String.format(
                Locale.ROOT,
                "a %s-pooling regression head with one output, its bias at the train mean %.4f, since the model"
                    + " has no 'logits' output (its outputs are %s)",
                head.cliName(), mean, outputs)));
  }

  /** The head pass, then its bias set to the targets' mean. */
  private record BiasAtMean(ClassificationHeadPass head, float mean) implements GraphPass {
    @Override
    public String name() {
      return head.name();
    }

    @Override
    public PassResult run(Model model) {
      PassResult r = head.run(model);
      List<String> params = ClassificationHeadPass.parameterNames(model);
      if (params.size() == 2) {
        Graph g = model.graph();
        Value bias = g.initializer(params.get(1)).orElseThrow();
        g.setInitializer(bias, DenseTensor.ofFloats(bias.name(), new long[] {1}, new float[] {mean}));
      }
      return r;
    }

    @Override
    public PassResult dryRun(Model model) {
      return head.dryRun(model);
    }
  }

  @Override
  public Objective objective(Model model) {
    inputs = TextData.batchInputs(model);
    return Objective.of(model, OUTPUT, huberDelta > 0 ? Loss.huber(huberDelta) : Loss.meanSquaredError());
  }

  @Override
  public List<TaskBatch> trainBatches(long epochSeed) {
    List<TaskBatch> out = new ArrayList<>();
    for (Batch b : order.epoch(train, epochSeed)) out.add(feed(b, trainTargets));
    return out;
  }

  /** The batch's tokens and its targets {@code [b, 1]}; each example's label is its index. */
  private TaskBatch feed(Batch b, float[] targets) {
    if (inputs == null) throw new IllegalStateException("RegressTask: call objective(model) before asking for batches");
    Map<String, Tensor> f = new LinkedHashMap<>(TextData.tokens(b, inputs));
    float[] y = new float[b.size()];
    for (int i = 0; i < y.length; i++) y[i] = targets[(int) b.labels()[i]];
    f.put(Objective.DEFAULT_LABELS, DenseTensor.ofFloats(Objective.DEFAULT_LABELS, new long[] {b.size(), 1}, y));
    return TaskBatch.of(f, b.size());
  }

  @Override
  public int trainSize() {
    return train.size();
  }

  @Override
  public int testSize() {
    return testTargets.length;
  }

  @Override
  public Evaluation evaluate(Trainer trainer) throws OrtException {
    double[] truth = new double[testTargets.length];
    double[] predicted = new double[testTargets.length];
    MeanLoss loss = new MeanLoss();
    int n = 0;
    for (Batch b : test) {
      EvalResult r = trainer.evalStep(feed(b, testTargets).feeds());
      float[] p = r.logits().toFloatArray();
      for (int i = 0; i < b.size(); i++) {
        truth[n] = testTargets[(int) b.labels()[i]];
        predicted[n] = p[i];
        n++;
      }
      loss.add(r, b.size());
    }
    RegressionMetrics m = RegressionMetrics.of(truth, predicted);
    Map<String, Double> metrics = new LinkedHashMap<>();
    metrics.put("rmse", m.rmse());
    metrics.put("mae", m.mae());
    metrics.put("pearson", m.pearson());
    metrics.put("spearman", m.spearman());
    return Evaluation.of(loss.mean(), metrics);
  }

  @Override
  public Model finish(Model trained) {
    describe(trained);
    return trained;
  }
}
