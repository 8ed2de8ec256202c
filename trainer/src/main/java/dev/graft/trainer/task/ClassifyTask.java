package dev.graft.trainer.task;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Shape;
import dev.graft.ir.Value;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.peft.ClassificationHeadPass;
import dev.graft.trainer.data.Batch;
import dev.graft.trainer.data.BatchOrder;
import dev.graft.trainer.data.Batcher;
import dev.graft.trainer.data.EncodedExample;
import dev.graft.trainer.data.LabelMap;
import dev.graft.trainer.data.TextExample;
import dev.graft.trainer.data.WordPieceTokenizer;
import dev.graft.trainer.eval.ClassificationMetrics;
import dev.graft.trainer.eval.Evaluator;
import dev.graft.trainer.train.EvalResult;
import dev.graft.trainer.train.Loss;
import dev.graft.trainer.train.Trainer;
import ai.onnxruntime.OrtException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Sequence classification: labelled texts, a {@code logits [batch, classes]} output, softmax
 * cross-entropy, accuracy and macro-F1.
 *
 * <pre>
 *   hidden [b, s, d] --(head: pool, MatMul W [d, C], Add b [C])--> logits [b, C]     C = labels in the data
 *   loss = SoftmaxCrossEntropyLoss(logits, labels [b])
 * </pre>
 *
 * The head is added only when the model (after the recipe) has no {@code logits} output; the
 * number of classes comes from the data. The saved model records the label names in class-id
 * order ({@link Evaluator#LABELS_METADATA_KEY}).
 */
public final class ClassifyTask implements Task {
  public static final String NAME = "classify";
  public static final String LOGITS = ClassificationHeadPass.LOGITS;

  private final HeadKind head;
  private final long seed;
  private LabelMap labels;
  private ImmutableList<EncodedExample> train;
  private ImmutableList<Batch> test;
  private Batcher batcher;
  private BatchOrder order;
  private ImmutableList<String> inputs;

  /** @param head the pooling of the head added to a model without logits; NONE adds none */
  public ClassifyTask(HeadKind head, long seed) {
    this.head = head;
    this.seed = seed;
  }

  public ClassifyTask(HeadKind head) {
    this(head, 0);
  }

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public String load(DataConfig c) {
    TextData.Parts parts = TextData.read(c, TextExample::label);
    List<TextExample> all = new ArrayList<>(parts.train());
    all.addAll(parts.test());
    labels = LabelMap.ofExamples(all);
    if (labels.size() < 2) {
      throw new IllegalArgumentException(
          "Classification needs at least 2 labels, but every example is labelled '" + labels.label(0)
              + "'. Check --label-column, or use --task regress for numeric targets.");
    }
    try (WordPieceTokenizer tok = WordPieceTokenizer.load(c.tokenizer(), c.maxLength())) {
      train = tok.encodeAll(parts.train(), labels);
      batcher = new Batcher(c.batchSize(), c.maxLength(), tok.padId());
      order = c.batchOrder(batcher);
      test = batcher.batches(tok.encodeAll(parts.test(), labels));
    }
    return String.format(
        "data: %d train and %d test examples, labels %s", parts.train().size(), parts.test().size(), labels.labels());
  }

  /** The label names in class-id order (after {@link #load}). */
  public LabelMap labels() {
    return labels;
  }

  @Override
  public Optional<TaskHead> head(Model model) {
    Graph g = model.graph();
    boolean present =
        TaskHead.present(g, LOGITS, labels.size(), classes ->
            "The model's 'logits' output has " + classes + " classes, but the data has "
                + labels.size() + " labels " + labels.labels() + ". Set classes: " + labels.size()
                + " in the recipe's classification-head, or drop it and let the task add one (--head mean).");
    if (present) return Optional.empty();
    List<String> outputs = g.outputs().stream().map(Value::name).toList();
    if (head == HeadKind.NONE) {
      throw new IllegalArgumentException(
          "The model has no 'logits' output to classify with (its outputs are " + outputs + ") and --head none"
              + " adds no head. Use --head mean (or cls, max), or a recipe with a classification-head.");
    }
    ClassificationHeadPass pass =
        new ClassificationHeadPass(
            ClassificationHeadPass.Config.of(labels.size(), head.pooling().orElseThrow()).withSeed(seed));
    return Optional.of(
        new TaskHead(
            pass,
            String.format(
                "a %s-pooling classification head for %d labels, since the model has no 'logits' output (its"
                    + " outputs are %s)",
                head.cliName(), labels.size(), outputs)));
  }

  @Override
  public Objective objective(Model model) {
    inputs = TextData.batchInputs(model);
    return Objective.of(model, LOGITS, Loss.crossEntropy());
  }

  @Override
  public List<TaskBatch> trainBatches(long epochSeed) {
    List<TaskBatch> out = new ArrayList<>();
    for (Batch b : order.epoch(train, epochSeed)) out.add(feed(b));
    return out;
  }

  private TaskBatch feed(Batch b) {
    Map<String, Tensor> f = new LinkedHashMap<>(TextData.tokens(b, requireInputs()));
    f.put(Objective.DEFAULT_LABELS, DenseTensor.ofLongs(Objective.DEFAULT_LABELS, new long[] {b.size()}, b.labels()));
    return TaskBatch.of(f, b.size());
  }

  private List<String> requireInputs() {
    if (inputs == null) throw new IllegalStateException("ClassifyTask: call objective(model) before asking for batches");
    return inputs;
  }

  @Override
  public int trainSize() {
    return train.size();
  }

  @Override
  public int testSize() {
    return test.stream().mapToInt(Batch::size).sum();
  }

  @Override
  public Evaluation evaluate(Trainer trainer) throws OrtException {
    return score(trainer).evaluation();
  }

  /** The full classification report and the mean loss on the held-out data. */
  public record Scored(ClassificationMetrics metrics, double loss) {
    /** What training logs and compares: the loss, accuracy and macro-F1. */
    public Evaluation evaluation() {
      Map<String, Double> m = new LinkedHashMap<>();
      m.put("accuracy", metrics.accuracy());
      m.put("macro_f1", metrics.macroF1());
      return Evaluation.of(loss, m);
    }
  }

  /**
   * Collects a classification task's held-out eval steps (texts or images alike): each row of
   * {@code logits [b, C]} against its label, and the loss weighted by batch size.
   */
  static final class Tally {
    private final List<float[]> logits = new ArrayList<>();
    private final List<Integer> truth = new ArrayList<>();
    private final MeanLoss loss = new MeanLoss();

    void add(EvalResult r, long[] labels, int size) {
      float[] flat = r.logits().toFloatArray();
      int k = flat.length / size;
      for (int i = 0; i < size; i++) {
        float[] row = new float[k];
        System.arraycopy(flat, i * k, row, 0, k);
        logits.add(row);
        truth.add((int) labels[i]);
      }
      loss.add(r, size);
    }

    Scored scored(List<String> labelNames) {
      int[] y = truth.stream().mapToInt(Integer::intValue).toArray();
      return new Scored(ClassificationMetrics.of(y, logits.toArray(new float[0][]), labelNames), loss.mean());
    }
  }

  /** Scores the held-out data: per-class precision/recall/F1 and the confusion matrix too. */
  public Scored score(Trainer trainer) throws OrtException {
    Tally tally = new Tally();
    for (Batch b : test) tally.add(trainer.evalStep(feed(b).feeds()), b.labels(), b.size());
    return tally.scored(labels.labels());
  }

  @Override
  public void describe(Model model) {
    Task.super.describe(model);
    model.putMetadata(Evaluator.LABELS_METADATA_KEY, labels.encode());
  }

  @Override
  public Model finish(Model trained) {
    describe(trained);
    return trained;
  }
}
