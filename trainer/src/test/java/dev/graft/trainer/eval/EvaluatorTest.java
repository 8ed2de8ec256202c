package dev.graft.trainer.eval;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import com.google.common.collect.ImmutableList;
import dev.graft.fixtures.PretrainedModels;
import dev.graft.fixtures.TinyModels;
import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.trainer.data.Batch;
import dev.graft.trainer.data.Batcher;
import dev.graft.trainer.data.EncodedExample;
import dev.graft.trainer.data.LabelMap;
import dev.graft.trainer.data.TextExample;
import dev.graft.trainer.data.WordPieceTokenizer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The evaluator on models whose outputs are known in closed form: a keyword classifier over
 * MiniLM's WordPiece ids, and the BERT-like fixture with a head, where batching and padding must
 * not change any example's logits.
 */
class EvaluatorTest {
  private static final int VOCAB = 30522; // MiniLM / bert-base-uncased
  private static final float BIAS = 0.1f;

  private static WordPieceTokenizer tokenizer;
  private static long[] positive;
  private static long[] negative;

  /** Texts with their labels; class 0 is "pos" in the model's own label map. */
  private static final List<TextExample> DATA =
      List.of(
          new TextExample("good great movie", "pos"),
          new TextExample("awful bad plot", "neg"),
          new TextExample("a bad good film with a great deal of charm", "pos"),
          new TextExample("the film", "neg"),
          new TextExample("bad", "neg"));

  @BeforeAll
  static void load() {
    tokenizer = WordPieceTokenizer.load(PretrainedModels.miniLmTokenizer(), 64);
    positive = new long[] {wordId("good"), wordId("great")};
    negative = new long[] {wordId("bad"), wordId("awful")};
  }

  @AfterAll
  static void close() {
    tokenizer.close();
  }

  private static long wordId(String word) {
    long[] ids = tokenizer.encode(word).inputIds();
    assertThat(ids).as("'%s' is one WordPiece between [CLS] and [SEP]", word).hasSize(3);
    return ids[1];
  }

  /**
   * {@code logits = mean over real tokens of E[id] @ W + b}: E[id] is (1, 0) for a positive
   * keyword, (0, 1) for a negative one, 0 otherwise; W = diag(2, 3), b = (0.1, 0). So an example
   * with p positive and n negative keywords among its L tokens (with [CLS] and [SEP]) has logits
   * {@code (2p/L + 0.1, 3n/L)}. The mean is masked, so padding changes nothing.
   */
  private static Model keywordClassifier(List<String> outputs, boolean withLabels) {
    GraphBuilder b = GraphBuilder.create("keywords");
    Value ids = b.input("input_ids", DataType.INT64, "batch", "sequence");
    Value mask = b.input("attention_mask", DataType.INT64, "batch", "sequence");
    float[] table = new float[VOCAB * 2];
    for (long id : positive) table[(int) id * 2] = 1f;
    for (long id : negative) table[(int) id * 2 + 1] = 1f;
    Value e = b.initializer("embeddings", DenseTensor.ofFloats(null, new long[] {VOCAB, 2}, table));
    Value w = b.floats(new long[] {2, 2}, 2f, 0f, 0f, 3f);
    Value bias = b.floats(new long[] {2}, BIAS, 0f);
    b.prefix("/pool");
    Value emb = b.op("Gather", e, ids);
    Value maskF = b.op("Cast", List.of(mask), Attr.of("to", (long) DataType.FLOAT.code()));
    Value mask3 = b.op("Unsqueeze", maskF, b.int64s(2));
    Value summed =
        b.op("ReduceSum", List.of(b.op("Mul", emb, mask3), b.int64s(1)), Attr.of("keepdims", 0L));
    Value count = b.op("ReduceSum", List.of(maskF, b.int64s(1)), Attr.of("keepdims", 1L));
    Value mean = b.op("Div", summed, count);
    b.prefix("/head");
    Value logits = b.op("Add", b.op("MatMul", mean, w), bias);
    for (String name : outputs) {
      Value v = name.equals("pooled") ? mean : logits;
      b.typed(b.output(name, v), DataType.FLOAT, "batch", 2L);
    }
    Model m = b.model(17);
    if (withLabels) m.putMetadata(Evaluator.LABELS_METADATA_KEY, "[\"pos\",\"neg\"]");
    return m;
  }

  /** The closed form of {@link #keywordClassifier} for {@code text}. */
  private static float[] expectedLogits(String text) {
    long[] ids = tokenizer.encode(text).inputIds();
    int p = 0;
    int n = 0;
    for (long id : ids) {
      for (long k : positive) if (id == k) p++;
      for (long k : negative) if (id == k) n++;
    }
    return new float[] {2f * p / ids.length + BIAS, 3f * n / ids.length};
  }

  @Test
  void logitsMatchTheClosedFormAndLabelsFollowTheModelsMap(@TempDir Path dir) {
    Path file = dir.resolve("keywords.onnx");
    ModelIO.save(keywordClassifier(List.of("logits"), true), file);
    List<int[]> progress = new ArrayList<>();
    try (Evaluator ev = Evaluator.open(file, 1)) {
      assertThat(ev.inputNames()).containsExactly("input_ids", "attention_mask");
      assertThat(ev.outputName()).isEqualTo("logits");
      assertThat(ev.modelLabels()).contains(LabelMap.decode("[\"pos\",\"neg\"]"));

      Predictions p = ev.predict(DATA, tokenizer, 2, (done, total) -> progress.add(new int[] {done, total}));

      assertThat(progress).containsExactly(new int[] {1, 3}, new int[] {2, 3}, new int[] {3, 3});
      for (int i = 0; i < DATA.size(); i++) {
        float[] expected = expectedLogits(DATA.get(i).text());
        assertThat(p.logits()[i][0]).as("example %s", i).isCloseTo(expected[0], within(1e-6f));
        assertThat(p.logits()[i][1]).as("example %s", i).isCloseTo(expected[1], within(1e-6f));
      }
      // The model's map, not the data's sorted one (which would make "neg" class 0).
      assertThat(p.classNames()).containsExactly("pos", "neg");
      assertThat(p.labels()).containsExactly(0, 1, 0, 1, 1);
      // "the film" has no keyword: logits (0.1, 0), predicted pos, labelled neg.
      ClassificationMetrics m = p.metrics();
      assertThat(m.confusion()).isDeepEqualTo(new long[][] {{2, 0}, {1, 2}});
      assertThat(m.accuracy()).isEqualTo(0.8);
    }
  }

  @Test
  void batchSizeAndPaddingDoNotChangeLogits() {
    try (Evaluator ev = Evaluator.open(keywordClassifier(List.of("logits"), true), 1)) {
      float[][] one = ev.predict(DATA, tokenizer, 1, Evaluator.Progress.NONE).logits();
      float[][] all = ev.predict(DATA, tokenizer, DATA.size(), Evaluator.Progress.NONE).logits();
      for (int i = 0; i < one.length; i++) {
        assertThat(all[i]).containsExactly(one[i], within(1e-6f));
      }
      // The unlabelled path (for out-of-distribution data) gives the same rows.
      float[][] texts =
          ev.logits(DATA.stream().map(TextExample::text).toList(), tokenizer, 3, Evaluator.Progress.NONE);
      for (int i = 0; i < one.length; i++) {
        assertThat(texts[i]).containsExactly(one[i], within(1e-6f));
      }
    }
  }

  @Test
  void prefersTheOutputNamedLogitsElseTakesTheFirst() {
    try (Evaluator ev = Evaluator.open(keywordClassifier(List.of("pooled", "logits"), true), 1)) {
      assertThat(ev.outputName()).isEqualTo("logits");
      float[][] logits = ev.predict(DATA, tokenizer, 4, Evaluator.Progress.NONE).logits();
      assertThat(logits[0][0]).isCloseTo(expectedLogits(DATA.get(0).text())[0], within(1e-6f));
    }
    try (Evaluator ev = Evaluator.open(keywordClassifier(List.of("scores"), true), 1)) {
      assertThat(ev.outputName()).isEqualTo("scores");
    }
  }

  @Test
  void withoutMetadataLabelsComeFromTheData() {
    try (Evaluator ev = Evaluator.open(keywordClassifier(List.of("logits"), false), 1)) {
      assertThat(ev.modelLabels()).isEmpty();
      // String labels sort: "neg" is class 0, so this model's pos/neg columns are read swapped.
      Predictions p = ev.predict(DATA, tokenizer, 8, Evaluator.Progress.NONE);
      assertThat(p.classNames()).containsExactly("neg", "pos");
      assertThat(p.labels()).containsExactly(1, 0, 1, 0, 0);
      assertThat(p.metrics().accuracy()).isEqualTo(0.2);

      // Integer labels within [0, classes) are class ids, even when a class is missing.
      List<TextExample> numeric =
          List.of(new TextExample("good", "0"), new TextExample("great", "0"));
      Predictions q = ev.predict(numeric, tokenizer, 8, Evaluator.Progress.NONE);
      assertThat(q.classNames()).containsExactly("0", "1");
      assertThat(q.labels()).containsExactly(0, 0);
      assertThat(q.metrics().accuracy()).isEqualTo(1.0);

      List<TextExample> oneLabel = List.of(new TextExample("good", "pos"));
      assertThatThrownBy(() -> ev.predict(oneLabel, tokenizer, 8, Evaluator.Progress.NONE))
          .hasMessageContaining("The data has 1 distinct labels [pos]")
          .hasMessageContaining("outputs 2 classes");
    }
  }

  @Test
  void refusesLabelsTheModelDoesNotKnowAndMetadataThatDoesNotFit() {
    try (Evaluator ev = Evaluator.open(keywordClassifier(List.of("logits"), true), 1)) {
      List<TextExample> other = List.of(new TextExample("good", "positive"));
      assertThatThrownBy(() -> ev.predict(other, tokenizer, 8, Evaluator.Progress.NONE))
          .hasMessageContaining("Unknown label 'positive'");
    }
    Model three = keywordClassifier(List.of("logits"), false);
    three.putMetadata(Evaluator.LABELS_METADATA_KEY, "[\"a\",\"b\",\"c\"]");
    try (Evaluator ev = Evaluator.open(three, 1)) {
      assertThatThrownBy(() -> ev.predict(DATA, tokenizer, 8, Evaluator.Progress.NONE))
          .hasMessageContaining("names 3 labels [a, b, c]")
          .hasMessageContaining("outputs 2 classes");
    }
    Model broken = keywordClassifier(List.of("logits"), false);
    broken.putMetadata(Evaluator.LABELS_METADATA_KEY, "{not json");
    assertThatThrownBy(() -> Evaluator.open(broken, 1))
        .hasMessageContaining("broken label map in metadata 'graft.labels'");
  }

  @Test
  void refusesModelsItCannotFeedOrRead(@TempDir Path dir) {
    GraphBuilder b = GraphBuilder.create("image");
    Value x = b.input("pixel_values", DataType.FLOAT, "batch", 4);
    b.typed(b.output("logits", b.op("Relu", x)), DataType.FLOAT, "batch", 4L);
    assertThatThrownBy(() -> Evaluator.open(b.model(17), 1))
        .hasMessageContaining("has input 'pixel_values', which the evaluator cannot feed");

    // An encoder without a head: [batch, sequence, hidden] is not logits.
    try (Evaluator ev = Evaluator.open(TinyModels.bertLike(TinyModels.Flavour.FUSED_OPSET17), 1)) {
      List<Batch> batches = new Batcher(2, 32, 0).batches(randomExamples(2, 5));
      assertThatThrownBy(() -> ev.logits(batches, Evaluator.Progress.NONE))
          .hasMessageContaining("output 'last_hidden_state' has shape [2, ")
          .hasMessageContaining("expected logits [batch, classes]");
    }
    assertThatThrownBy(() -> Evaluator.open(dir.resolve("missing.onnx"), 1))
        .hasMessageContaining("does not exist");
  }

  /** Random BERT-like examples: ids below the fixture's vocabulary, lengths 3..max. */
  private static List<EncodedExample> randomExamples(int count, long seed) {
    SplittableRandom random = new SplittableRandom(seed);
    List<EncodedExample> out = new ArrayList<>();
    for (int i = 0; i < count; i++) {
      int length = 3 + random.nextInt(TinyModels.BERT_MAX_POSITIONS - 8);
      long[] ids = new long[length];
      long[] types = new long[length];
      for (int t = 0; t < length; t++) {
        ids[t] = random.nextInt(TinyModels.BERT_VOCAB);
        types[t] = t < length / 2 ? 0 : 1;
      }
      out.add(new EncodedExample(ids, types, random.nextInt(3)));
    }
    return out;
  }

  @Test
  void bertLikeEncoderWithAHeadRunsEndToEnd() {
    // Head: the first position's hidden state ([CLS]) -> MatMul -> Add -> logits[batch, 3].
    Model model = TinyModels.bertLike(TinyModels.Flavour.FUSED_OPSET17);
    Value hidden = model.graph().outputs().get(0);
    GraphBuilder b = GraphBuilder.on(model.graph());
    b.prefix("/classifier");
    SplittableRandom random = new SplittableRandom(99);
    float[] w = new float[TinyModels.BERT_HIDDEN * 3];
    for (int i = 0; i < w.length; i++) w[i] = (float) random.nextGaussian();
    Value cls = b.op("Gather", List.of(hidden, b.scalar(0L)), Attr.of("axis", 1L));
    Value logits =
        b.op(
            "Add",
            b.op("MatMul", cls, b.floats(new long[] {TinyModels.BERT_HIDDEN, 3}, w)),
            b.floats(new long[] {3}, 0.5f, -0.5f, 0f));
    b.typed(b.output("logits", logits), DataType.FLOAT, "batch", 3L);

    List<EncodedExample> examples = randomExamples(7, 1);
    Batcher batcher = new Batcher(3, TinyModels.BERT_MAX_POSITIONS, 0);
    try (Evaluator ev = Evaluator.open(model, 2)) {
      assertThat(ev.inputNames()).containsExactlyInAnyOrder("input_ids", "attention_mask", "token_type_ids");
      assertThat(ev.outputName()).isEqualTo("logits");
      ImmutableList<Batch> batches = batcher.batches(examples);
      assertThat(batches).hasSize(3);
      float[][] batched = ev.logits(batches, Evaluator.Progress.NONE);
      assertThat(batched).hasNumberOfRows(7);
      // Each example alone (no padding) must give the same logits as inside a padded batch:
      // the attention mask reaches the model and is honoured.
      for (int i = 0; i < examples.size(); i++) {
        float[][] alone = ev.logits(List.of(batcher.batch(List.of(examples.get(i)))), Evaluator.Progress.NONE);
        assertThat(batched[i]).as("example %s", i).containsExactly(alone[0], within(1e-4f));
        for (float v : alone[0]) assertThat(v).isFinite();
      }
      // And the metrics run over them.
      int[] labels = examples.stream().mapToInt(EncodedExample::label).toArray();
      ClassificationMetrics m = ClassificationMetrics.of(labels, batched);
      assertThat(m.count()).isEqualTo(7);
    }
  }
}
