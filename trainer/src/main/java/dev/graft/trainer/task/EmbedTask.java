package dev.graft.trainer.task;

import ai.onnxruntime.OrtException;
import com.google.common.collect.ImmutableList;
import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Shape;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.trainer.data.Batch;
import dev.graft.trainer.data.Batcher;
import dev.graft.trainer.data.EncodedExample;
import dev.graft.trainer.data.LabelMap;
import dev.graft.trainer.data.Shuffle;
import dev.graft.trainer.data.TextExample;
import dev.graft.trainer.data.WordPieceTokenizer;
import dev.graft.trainer.eval.Evaluator;
import dev.graft.trainer.eval.RetrievalMetrics;
import dev.graft.trainer.train.EvalResult;
import dev.graft.trainer.train.Loss;
import dev.graft.trainer.train.Trainer;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * Sentence-embedding fine-tuning with no head, the way sentence-transformers users tune MiniLM and
 * bge for retrieval: the multiple-negatives ranking loss ({@link Loss.MultipleNegativesRanking})
 * over (anchor, positive) pairs with in-batch negatives. Pairs come from a pair column ({@code
 * --pair-column}: each text's positive), or are formed within a label from labelled sentences (the
 * SetFit recipe: each sentence with a random other sentence of its label, other pairs of the same
 * label masked out of its negatives).
 *
 * <pre>
 *   training copy only:  hidden [2n, s, d] --mean pooling (mask)--> sentence_embedding [2n, d]
 *   loss = MNRL(sentence_embedding, groups [n])          rows 0..n-1 anchors, n..2n-1 positives
 * </pre>
 *
 * The pooling lives in the objective's copy of the model, so the saved model (and its merged
 * export) keeps exactly the base model's inputs, outputs, names, types and shapes: code written
 * for the base embedding model loads the tuned one unchanged. Metrics on the held-out data:
 * recall@1, recall@10 and MRR of retrieval (pairs: each anchor retrieves its positive among all
 * positives; labelled sentences: each retrieves a same-label sentence among the others), and with
 * labels the nearest-centroid accuracy (centroids of the training embeddings).
 */
public final class EmbedTask implements Task {
  public static final String NAME = "embed";
  /** The pooled output the training copy gets. */
  public static final String OUTPUT = "sentence_embedding";

  private final HeadKind pooling;
  private final long seed;
  private final double scale;
  private final String pairColumn;

  private Batcher batcher;
  private ImmutableList<String> inputs;
  // Labelled sentences (SetFit pairs):
  private LabelMap labels;
  private ImmutableList<EncodedExample> train;
  private ImmutableList<EncodedExample> test;
  // Pair data: anchors.get(i) pairs with positives.get(i).
  private ImmutableList<EncodedExample> trainAnchors;
  private ImmutableList<EncodedExample> trainPositives;
  private ImmutableList<EncodedExample> testAnchors;
  private ImmutableList<EncodedExample> testPositives;

  /**
   * @param pooling how the training copy pools the hidden states (mean or cls)
   * @param pairColumn the column holding each text's positive; "" for pairs within a label
   */
  public EmbedTask(HeadKind pooling, long seed, double scale, String pairColumn) {
    if (pooling == HeadKind.MAX) {
      throw new IllegalArgumentException(
          "embed pools with mean or cls: max pooling has no gradient rule (ReduceMax) yet. Use --head mean.");
    }
    this.pooling = pooling;
    this.seed = seed;
    this.scale = scale;
    this.pairColumn = pairColumn;
  }

  @Override
  public String name() {
    return NAME;
  }

  private boolean pairs() {
    return !pairColumn.isEmpty();
  }

  @Override
  public String load(DataConfig c) {
    DataConfig read =
        pairs()
            ? new DataConfig(c.train(), c.test(), c.testFraction(), c.textColumn(), pairColumn, c.tokenizer(),
                c.maxLength(), c.batchSize(), c.seed(), c.out())
            : c;
    TextData.Parts parts = TextData.read(read, pairs() ? null : TextExample::label);
    try (WordPieceTokenizer tok = WordPieceTokenizer.load(c.tokenizer(), c.maxLength())) {
      batcher = new Batcher(c.batchSize(), c.maxLength(), tok.padId());
      if (pairs()) {
        trainAnchors = TextData.encodeIndexed(tok, parts.train().stream().map(TextExample::text).toList());
        trainPositives = TextData.encodeIndexed(tok, parts.train().stream().map(TextExample::label).toList());
        testAnchors = TextData.encodeIndexed(tok, parts.test().stream().map(TextExample::text).toList());
        testPositives = TextData.encodeIndexed(tok, parts.test().stream().map(TextExample::label).toList());
        return String.format(
            "data: %d train and %d test pairs ('%s' -> '%s'), in-batch negatives, scale %s",
            trainAnchors.size(), testAnchors.size(), c.textColumn(), pairColumn, scale);
      }
      List<TextExample> all = new ArrayList<>(parts.train());
      all.addAll(parts.test());
      labels = LabelMap.ofExamples(all);
      train = tok.encodeAll(parts.train(), labels);
      test = tok.encodeAll(parts.test(), labels);
    }
    return String.format(
        "data: %d train and %d test sentences, labels %s; pairs formed within a label (SetFit), other pairs of"
            + " the same label masked out of the negatives, scale %s",
        train.size(), test.size(), labels.labels(), scale);
  }

  @Override
  public Optional<TaskHead> head(Model model) {
    hidden(model.graph());
    return Optional.empty();
  }

  /** The output the pooling reads: the only rank-3 float output, or last_hidden_state among several. */
  private static Value hidden(Graph g) {
    List<Value> rank3 =
        g.outputs().stream()
            .filter(v -> v.shape().map(Shape::rank).orElse(-1) == 3 && v.dataType().orElse(null) == DataType.FLOAT)
            .toList();
    if (rank3.size() == 1) return rank3.get(0);
    for (Value v : rank3) if (v.name().equals("last_hidden_state") || v.name().equals("token_embeddings")) return v;
    throw new IllegalArgumentException(
        "embed pools token embeddings [batch, sequence, hidden] into sentence embeddings, but the model's outputs "
            + g.outputs().stream().map(Value::name).toList() + " have " + rank3.size() + " such outputs. Give it"
            + " one, named last_hidden_state.");
  }

  @Override
  public Objective objective(Model model) {
    Model copy = model.copy();
    addPooledOutput(copy, pooling);
    inputs = TextData.batchInputs(copy);
    return Objective.of(copy, OUTPUT, Loss.multipleNegativesRanking(scale));
  }

  /**
   * A copy of {@code model} whose only output is the pooled {@value #OUTPUT} [batch, hidden]: what
   * {@code graft eval} runs to embed texts with a base or tuned embedding model.
   */
  public static Model embeddingModel(Model model, HeadKind pooling) {
    Model copy = model.copy();
    Value pooled = addPooledOutput(copy, pooling);
    Graph g = copy.graph();
    for (Value o : List.copyOf(g.outputs())) if (o != pooled) g.removeOutput(o);
    return copy;
  }

  /** Adds the output {@value #OUTPUT}: the hidden states pooled (mean over the mask, or the first token). */
  private static Value addPooledOutput(Model model, HeadKind pooling) {
    Graph g = model.graph();
    Value h = hidden(g);
    GraphBuilder b = GraphBuilder.on(g).atEnd().prefix("/graft/embed");
    Value pooled;
    if (pooling == HeadKind.CLS) {
      pooled = b.op("Gather", List.of(h, b.scalar(0L)), Attr.of("axis", 1L));
    } else {
      Value mask =
          g.inputs().stream()
              .filter(v -> v.name().equals(Evaluator.ATTENTION_MASK))
              .findFirst()
              .orElseThrow(
                  () -> new IllegalArgumentException(
                      "Mean pooling reads the attention_mask input, which the model lacks; use --head cls."));
      Value m = b.op("Unsqueeze", b.op("Cast", List.of(mask), Attr.of("to", (long) DataType.FLOAT.code())), b.int64s(2));
      Value sum = b.op("ReduceSum", List.of(b.op("Mul", h, m), b.int64s(1)), Attr.of("keepdims", 0L));
      Value count = b.op("ReduceSum", List.of(m, b.int64s(1)), Attr.of("keepdims", 0L));
      pooled = b.op("Div", sum, b.op("Max", count, b.scalar(1e-9f)));
    }
    return b.output(OUTPUT, pooled);
  }

  /** A pair of encoded texts and the group whose other pairs are not its negatives. */
  private record Pair(EncodedExample anchor, EncodedExample positive, long group) {}

  private List<Pair> trainPairs(long epochSeed) {
    List<Pair> out = new ArrayList<>();
    if (pairs()) {
      for (int i : Shuffle.permutation(trainAnchors.size(), epochSeed)) {
        out.add(new Pair(trainAnchors.get(i), trainPositives.get(i), i));
      }
      return out;
    }
    return withinLabel(train, Shuffle.permutation(train.size(), epochSeed), epochSeed);
  }

  /** Each example (in {@code order}) with a random other example of its label; singletons are left out. */
  private List<Pair> withinLabel(List<EncodedExample> examples, int[] order, long pairingSeed) {
    Map<Integer, List<Integer>> byLabel = new LinkedHashMap<>();
    for (int i = 0; i < examples.size(); i++) byLabel.computeIfAbsent(examples.get(i).label(), k -> new ArrayList<>()).add(i);
    SplittableRandom random = new SplittableRandom(pairingSeed ^ seed);
    List<Pair> out = new ArrayList<>();
    for (int i : order) {
      List<Integer> same = byLabel.get(examples.get(i).label());
      if (same.size() < 2) continue;
      int j;
      do {
        j = same.get(random.nextInt(same.size()));
      } while (j == i);
      out.add(new Pair(examples.get(i), examples.get(j), examples.get(i).label()));
    }
    return out;
  }

  @Override
  public List<TaskBatch> trainBatches(long epochSeed) {
    List<TaskBatch> out = new ArrayList<>();
    List<Pair> all = trainPairs(epochSeed);
    for (int start = 0; start < all.size(); start += batcher.batchSize()) {
      out.add(feed(all.subList(start, Math.min(all.size(), start + batcher.batchSize()))));
    }
    return out;
  }

  /** Anchors then positives as one token batch [2n, s], and the groups [n]. */
  private TaskBatch feed(List<Pair> pairs) {
    if (inputs == null) throw new IllegalStateException("EmbedTask: call objective(model) before asking for batches");
    List<EncodedExample> rows = new ArrayList<>();
    pairs.forEach(p -> rows.add(p.anchor()));
    pairs.forEach(p -> rows.add(p.positive()));
    Batch b = batcher.batch(rows);
    Map<String, Tensor> f = new LinkedHashMap<>(TextData.tokens(b, inputs));
    long[] groups = pairs.stream().mapToLong(Pair::group).toArray();
    f.put(Objective.DEFAULT_LABELS, DenseTensor.ofLongs(Objective.DEFAULT_LABELS, new long[] {groups.length}, groups));
    return TaskBatch.of(f, pairs.size());
  }

  @Override
  public int trainSize() {
    return pairs() ? trainAnchors.size() : train.size();
  }

  @Override
  public int testSize() {
    return pairs() ? testAnchors.size() : test.size();
  }

  /** Embeddings of the pairs' anchors and positives in order, and the mean loss over the pairs. */
  private record Embedded(float[][] anchors, float[][] positives, double loss) {}

  private Embedded embed(Trainer trainer, List<Pair> pairs) throws OrtException {
    float[][] a = new float[pairs.size()][];
    float[][] p = new float[pairs.size()][];
    MeanLoss loss = new MeanLoss();
    for (int start = 0; start < pairs.size(); start += batcher.batchSize()) {
      List<Pair> chunk = pairs.subList(start, Math.min(pairs.size(), start + batcher.batchSize()));
      EvalResult r = trainer.evalStep(feed(chunk).feeds());
      float[] flat = r.logits().toFloatArray();
      int n = chunk.size();
      int d = flat.length / (2 * n);
      for (int i = 0; i < n; i++) {
        a[start + i] = java.util.Arrays.copyOfRange(flat, i * d, (i + 1) * d);
        p[start + i] = java.util.Arrays.copyOfRange(flat, (n + i) * d, (n + i + 1) * d);
      }
      loss.add(r, n);
    }
    return new Embedded(a, p, loss.mean());
  }

  @Override
  public Evaluation evaluate(Trainer trainer) throws OrtException {
    Map<String, Double> metrics = new LinkedHashMap<>();
    if (pairs()) {
      List<Pair> pairs = new ArrayList<>();
      for (int i = 0; i < testAnchors.size(); i++) pairs.add(new Pair(testAnchors.get(i), testPositives.get(i), i));
      Embedded e = embed(trainer, pairs);
      RetrievalMetrics r = RetrievalMetrics.of(e.anchors(), e.positives(), i -> Set.of(i), i -> -1);
      put(metrics, r);
      return Evaluation.of(e.loss(), metrics);
    }
    // Each test sentence is an anchor once (fixed pairing), so the anchors' embeddings are the test set's.
    int[] order = new int[test.size()];
    for (int i = 0; i < order.length; i++) order[i] = i;
    List<Pair> testPairs = withinLabel(test, order, 0);
    List<Pair> all = new ArrayList<>();
    int k = 0;
    for (int i = 0; i < test.size(); i++) {
      if (k < testPairs.size() && testPairs.get(k).anchor() == test.get(i)) all.add(testPairs.get(k++));
      else all.add(new Pair(test.get(i), test.get(i), -1 - i)); // a singleton label: no partner
    }
    Embedded e = embed(trainer, all);
    int[] testLabels = test.stream().mapToInt(EncodedExample::label).toArray();
    Map<Integer, Set<Integer>> byLabel = new LinkedHashMap<>();
    for (int i = 0; i < testLabels.length; i++) byLabel.computeIfAbsent(testLabels[i], x -> new HashSet<>()).add(i);
    RetrievalMetrics r = RetrievalMetrics.of(e.anchors(), e.anchors(), i -> byLabel.get(testLabels[i]), i -> i);
    put(metrics, r);
    List<Pair> trainSelf = new ArrayList<>();
    for (EncodedExample x : train) trainSelf.add(new Pair(x, x, trainSelf.size()));
    float[][] trainEmb = embed(trainer, trainSelf).anchors();
    metrics.put(
        "centroid_accuracy",
        RetrievalMetrics.nearestCentroidAccuracy(
            trainEmb, train.stream().mapToInt(EncodedExample::label).toArray(), e.anchors(), testLabels, labels.size()));
    return Evaluation.of(e.loss(), metrics);
  }

  private static void put(Map<String, Double> metrics, RetrievalMetrics r) {
    metrics.put("recall_at_1", r.recallAt1());
    metrics.put("recall_at_10", r.recallAt10());
    metrics.put("mrr", r.mrr());
  }

  @Override
  public Model finish(Model trained) {
    describe(trained);
    return trained;
  }
}
