package dev.graft.trainer.eval;

import static com.google.common.base.Preconditions.checkArgument;
import static com.google.common.base.Preconditions.checkState;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMap;
import com.google.common.collect.ImmutableSet;
import dev.graft.ir.Model;
import dev.graft.ir.io.SessionFile;
import dev.graft.trainer.data.Batch;
import dev.graft.trainer.data.Batcher;
import dev.graft.trainer.data.EncodedExample;
import dev.graft.trainer.data.LabelMap;
import dev.graft.trainer.data.TextExample;
import dev.graft.trainer.data.WordPieceTokenizer;
import java.nio.DoubleBuffer;
import java.nio.FloatBuffer;
import java.nio.IntBuffer;
import java.nio.LongBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Runs a classifier (an ONNX model on ONNX Runtime, CPU) over a dataset in batches and collects
 * its logits, for {@link ClassificationMetrics} and {@link OodMetrics}.
 *
 * <p>The model's inputs must be among {@code input_ids}, {@code attention_mask} and {@code
 * token_type_ids} (int64 or int32, {@code [batch, sequence]}); only those it declares are fed,
 * so a model without token types is fine. The logits are the output named {@code logits}, else
 * the model's first output, and must be {@code [batch, classes]}.
 *
 * <p>Labels: a model trained by Graft records its label map in the metadata key {@value
 * #LABELS_METADATA_KEY} ({@link LabelMap#encode()}, a JSON array in class-id order), and then the
 * data's labels are read through it. Without it the map comes from the data: integer labels that
 * all lie in {@code [0, classes)} are taken as class ids; otherwise the data's distinct labels,
 * sorted as {@link LabelMap} sorts them, must be exactly as many as the model's classes.
 *
 * <p>Holds an ORT session: close it.
 */
public final class Evaluator implements AutoCloseable {
  /** The model metadata key holding the label map ({@link LabelMap#encode()}). */
  public static final String LABELS_METADATA_KEY = "graft.labels";

  public static final String INPUT_IDS = "input_ids";
  public static final String ATTENTION_MASK = "attention_mask";
  public static final String TOKEN_TYPE_IDS = "token_type_ids";
  /** The output read as logits when the model has one by this name. */
  public static final String LOGITS = "logits";

  private static final ImmutableSet<String> FEEDABLE =
      ImmutableSet.of(INPUT_IDS, ATTENTION_MASK, TOKEN_TYPE_IDS);
  private static final Pattern INTEGER = Pattern.compile("0|[1-9]\\d{0,8}"); // canonical, fits an int

  /** Told after every batch, so that a caller can draw a progress bar. */
  @FunctionalInterface
  public interface Progress {
    Progress NONE = (done, total) -> {};

    void batchDone(int batchesDone, int totalBatches);
  }

  private final String source;
  private final OrtSession session;
  private final ImmutableMap<String, OnnxJavaType> inputs;
  private final String outputName;
  private final Optional<LabelMap> modelLabels;

  private Evaluator(String source, OrtSession session) throws OrtException {
    this.source = source;
    this.session = session;
    ImmutableMap.Builder<String, OnnxJavaType> in = ImmutableMap.builder();
    for (Map.Entry<String, NodeInfo> e : session.getInputInfo().entrySet()) {
      String name = e.getKey();
      checkArgument(
          FEEDABLE.contains(name),
          "Model %s has input '%s', which the evaluator cannot feed: it feeds %s. Evaluate a"
              + " text classifier with those inputs (rename the input if it means one of them).",
          source,
          name,
          FEEDABLE);
      OnnxJavaType type =
          e.getValue().getInfo() instanceof TensorInfo t ? t.type : OnnxJavaType.UNKNOWN;
      checkArgument(
          type == OnnxJavaType.INT64 || type == OnnxJavaType.INT32,
          "Model %s input '%s' is %s; token inputs must be int64 (or int32) tensors [batch,"
              + " sequence].",
          source,
          name,
          e.getValue().getInfo());
      in.put(name, type);
    }
    this.inputs = in.buildOrThrow();
    checkArgument(
        inputs.containsKey(INPUT_IDS),
        "Model %s has no input '%s' (its inputs are %s); the evaluator needs token ids.",
        source,
        INPUT_IDS,
        inputs.keySet());
    Set<String> outputs = session.getOutputNames();
    checkArgument(!outputs.isEmpty(), "Model %s has no outputs.", source);
    this.outputName = outputs.contains(LOGITS) ? LOGITS : outputs.iterator().next();
    Optional<String> encoded = session.getMetadata().getCustomMetadataValue(LABELS_METADATA_KEY);
    try {
      this.modelLabels = encoded.map(LabelMap::decode);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(
          "Model "
              + source
              + " has a broken label map in metadata '"
              + LABELS_METADATA_KEY
              + "': "
              + e.getMessage(),
          e);
    }
  }

  /** Opens the model file {@code model} (external data next to it is found by ORT). */
  public static Evaluator open(Path model, int threads) {
    checkArgument(Files.isRegularFile(model), "Model file %s does not exist.", model);
    return open(model.toString(), threads, o -> OrtEnvironment.getEnvironment().createSession(model.toString(), o));
  }

  /** Opens the serialised model {@code modelBytes}. */
  public static Evaluator open(byte[] modelBytes, int threads) {
    return open("(in memory)", threads, o -> OrtEnvironment.getEnvironment().createSession(modelBytes, o));
  }

  /**
   * Opens {@code model} from a {@link SessionFile}: its external weights go from their own file
   * to ORT, never through the heap or a byte array.
   */
  public static Evaluator open(Model model, int threads) {
    try (SessionFile file = SessionFile.write(model)) {
      return open(
          "(in memory)",
          threads,
          o -> OrtEnvironment.getEnvironment().createSession(file.path().toString(), o));
    }
  }

  private interface SessionFactory {
    OrtSession create(OrtSession.SessionOptions options) throws OrtException;
  }

  /**
   * @param threads ORT's intra-op threads; 0 leaves ORT's default (one per core)
   */
  private static Evaluator open(String source, int threads, SessionFactory factory) {
    checkArgument(threads >= 0, "threads %s is negative (0 means ORT's default)", threads);
    try (OrtSession.SessionOptions options = new OrtSession.SessionOptions()) {
      if (threads > 0) options.setIntraOpNumThreads(threads);
      OrtSession session = factory.create(options);
      try {
        return new Evaluator(source, session);
      } catch (RuntimeException | OrtException e) {
        session.close();
        throw e;
      }
    } catch (OrtException e) {
      throw new IllegalArgumentException(
          "ONNX Runtime cannot load model " + source + ": " + e.getMessage()
              + ". Check it with graft inspect.",
          e);
    }
  }

  /** The label map recorded in the model's metadata, if any. */
  public Optional<LabelMap> modelLabels() {
    return modelLabels;
  }

  /** The inputs that are fed, in the model's order. */
  public ImmutableList<String> inputNames() {
    return inputs.keySet().asList();
  }

  /** The output read as logits. */
  public String outputName() {
    return outputName;
  }

  /**
   * Classifies {@code examples}, {@code batchSize} at a time, with their labels mapped as the
   * class comment says.
   */
  public Predictions predict(
      List<TextExample> examples, WordPieceTokenizer tokenizer, int batchSize, Progress progress) {
    checkArgument(!examples.isEmpty(), "no examples to evaluate");
    // The ids attached here follow the data's own label order; they are not used, since the
    // model's map (known after the first batch fixes the class count) decides the real ones.
    LabelMap dataLabels = LabelMap.ofExamples(examples);
    float[][] logits =
        encodedLogits(tokenizer.encodeAll(examples, dataLabels), tokenizer, batchSize, progress);
    LabelMap map = labelMap(examples, logits[0].length);
    int[] labels = new int[examples.size()];
    for (int i = 0; i < labels.length; i++) labels[i] = map.id(examples.get(i).label());
    return new Predictions(logits, labels, map.labels());
  }

  /** The logits of {@code texts} (labels are not needed: for out-of-distribution data). */
  public float[][] logits(
      List<String> texts, WordPieceTokenizer tokenizer, int batchSize, Progress progress) {
    checkArgument(!texts.isEmpty(), "no texts to evaluate");
    List<EncodedExample> encoded = new ArrayList<>(texts.size());
    for (String t : texts) encoded.add(tokenizer.encode(t));
    return encodedLogits(encoded, tokenizer, batchSize, progress);
  }

  private float[][] encodedLogits(
      List<EncodedExample> encoded, WordPieceTokenizer tokenizer, int batchSize, Progress progress) {
    Batcher batcher = new Batcher(batchSize, tokenizer.maxLength(), tokenizer.padId());
    return logits(batcher.batches(encoded), progress);
  }

  /** The logits of every row of {@code batches}, in order: one row per example. */
  public float[][] logits(List<Batch> batches, Progress progress) {
    checkArgument(!batches.isEmpty(), "no batches to evaluate");
    int rows = 0;
    for (Batch b : batches) rows += b.size();
    float[][] out = new float[rows][];
    int row = 0;
    for (int i = 0; i < batches.size(); i++) {
      float[][] batch = run(batches.get(i), i);
      System.arraycopy(batch, 0, out, row, batch.length);
      row += batch.length;
      progress.batchDone(i + 1, batches.size());
    }
    return out;
  }

  private float[][] run(Batch batch, int index) {
    Map<String, OnnxTensor> feeds = new LinkedHashMap<>();
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    try {
      for (Map.Entry<String, OnnxJavaType> in : inputs.entrySet()) {
        long[] data =
            switch (in.getKey()) {
              case INPUT_IDS -> batch.inputIds();
              case ATTENTION_MASK -> batch.attentionMask();
              case TOKEN_TYPE_IDS -> batch.tokenTypeIds();
              default -> throw new IllegalStateException("unfeedable input " + in.getKey());
            };
        feeds.put(
            in.getKey(),
            in.getValue() == OnnxJavaType.INT64
                ? OnnxTensor.createTensor(env, LongBuffer.wrap(data), batch.shape())
                : OnnxTensor.createTensor(env, IntBuffer.wrap(toInts(data)), batch.shape()));
      }
      try (OrtSession.Result result = session.run(feeds, Set.of(outputName))) {
        OnnxValue value = result.get(outputName).orElseThrow();
        checkState(
            value instanceof OnnxTensor,
            "Model %s output '%s' is %s, not a tensor of logits.",
            source,
            outputName,
            value.getInfo());
        return toRows((OnnxTensor) value, batch.size());
      }
    } catch (OrtException e) {
      throw new IllegalStateException(
          "ONNX Runtime failed on batch "
              + index
              + " (shape "
              + Arrays.toString(batch.shape())
              + ") of model "
              + source
              + ": "
              + e.getMessage(),
          e);
    } finally {
      for (OnnxTensor t : feeds.values()) t.close();
    }
  }

  private float[][] toRows(OnnxTensor tensor, int batchSize) {
    TensorInfo info = tensor.getInfo();
    long[] shape = info.getShape();
    checkState(
        shape.length == 2 && shape[0] == batchSize,
        "Model %s output '%s' has shape %s for a batch of %s; expected logits [batch, classes]."
            + " Evaluate a classifier (a model with a classification head).",
        source,
        outputName,
        Arrays.toString(shape),
        batchSize);
    int k = Math.toIntExact(shape[1]);
    checkState(k > 0, "Model %s output '%s' has no classes (shape %s).", source, outputName,
        Arrays.toString(shape));
    float[] flat;
    if (info.type == OnnxJavaType.DOUBLE) {
      DoubleBuffer d = tensor.getDoubleBuffer();
      flat = new float[d.remaining()];
      for (int i = 0; i < flat.length; i++) flat[i] = (float) d.get(i);
    } else {
      // FLOAT, and FLOAT16/BFLOAT16, which ORT widens to float here.
      FloatBuffer f = tensor.getFloatBuffer();
      checkState(
          f != null,
          "Model %s output '%s' is %s, not floating point; logits must be float.",
          source,
          outputName,
          info.type);
      flat = new float[f.remaining()];
      f.get(flat);
    }
    float[][] rows = new float[batchSize][];
    for (int r = 0; r < batchSize; r++) rows[r] = Arrays.copyOfRange(flat, r * k, (r + 1) * k);
    return rows;
  }

  private static int[] toInts(long[] data) {
    int[] out = new int[data.length];
    for (int i = 0; i < data.length; i++) out[i] = Math.toIntExact(data[i]);
    return out;
  }

  /** The label map for {@code examples} against a model with {@code classes} outputs. */
  LabelMap labelMap(List<TextExample> examples, int classes) {
    if (modelLabels.isPresent()) {
      LabelMap map = modelLabels.get();
      checkArgument(
          map.size() == classes,
          "Model %s names %s labels %s in metadata '%s' but outputs %s classes. The metadata does"
              + " not belong to this head; rewrite it with the training labels.",
          source,
          map.size(),
          map.labels(),
          LABELS_METADATA_KEY,
          classes);
      return map;
    }
    boolean classIds =
        examples.stream()
            .map(TextExample::label)
            .allMatch(l -> INTEGER.matcher(l).matches() && Integer.parseInt(l) < classes);
    if (classIds) {
      List<String> ids = new ArrayList<>();
      for (int c = 0; c < classes; c++) ids.add(Integer.toString(c));
      // Numeric labels sort numerically, so label "c" gets id c.
      return LabelMap.of(ids);
    }
    LabelMap map = LabelMap.ofExamples(examples);
    checkArgument(
        map.size() == classes,
        "The data has %s distinct labels %s but model %s outputs %s classes, and the model records"
            + " no label map (metadata '%s'). Evaluate with data holding every class, or with a"
            + " model trained by graft train, which records its labels.",
        map.size(),
        map.labels(),
        source,
        classes,
        LABELS_METADATA_KEY);
    return map;
  }

  @Override
  public void close() {
    try {
      session.close();
    } catch (OrtException e) {
      throw new IllegalStateException("Cannot close the ORT session of " + source, e);
    }
  }
}
