package dev.graft.trainer.task;

import ai.onnxruntime.OrtException;
import com.google.gson.JsonElement;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import com.google.common.collect.ImmutableList;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.peft.CodaDistillation;
import dev.graft.rewrite.peft.CodaLayers;
import dev.graft.trainer.data.Batch;
import dev.graft.trainer.data.BatchOrder;
import dev.graft.trainer.data.Batcher;
import dev.graft.trainer.data.DataFileException;
import dev.graft.trainer.data.Split;
import dev.graft.trainer.data.TextDatasets;
import dev.graft.trainer.data.EncodedExample;
import dev.graft.trainer.data.TextExample;
import dev.graft.trainer.data.WordPieceTokenizer;
import dev.graft.trainer.train.Loss;
import dev.graft.trainer.train.Trainer;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Locale;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * CoDA's light distillation phase as a task ({@code graft train --task coda-distill}): on
 * unlabelled text (the data's text column; labels are not read), the CoDA model's routers and
 * adapters learn to reproduce the frozen dense model's last hidden states, the teacher running in
 * the same train-step graph ({@link CodaDistillation}).
 *
 * <pre>
 *   loss = mean over batch, tokens and width of ((h_coda - h_dense) · mask)²      ("distill_mse")
 * </pre>
 *
 * No head is added; the saved model is the CoDA model without the teacher, ready for task
 * fine-tuning ({@code graft train TUNED --recipe head.yaml}: its CoDA parameters stay trainable).
 */
public final class CodaDistillTask implements Task {
  public static final String NAME = "coda-distill";
  public static final String HIDDEN = "last_hidden_state";

  private ImmutableList<EncodedExample> train;
  private ImmutableList<Batch> test;
  private Batcher batcher;
  private BatchOrder order;
  private ImmutableList<String> inputs;
  private long width;

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public String load(DataConfig c) {
    List<String> trainTexts = new ArrayList<>();
    for (Path p : c.train()) trainTexts.addAll(texts(p, c));
    List<String> testTexts = new ArrayList<>();
    for (Path p : c.test()) testTexts.addAll(texts(p, c));
    if (testTexts.isEmpty()) {
      Split<String> split = Split.random(trainTexts, c.testFraction(), c.seed());
      if (split.train().isEmpty() || split.validation().isEmpty()) {
        throw new IllegalArgumentException(
            "Cannot hold out " + c.testFraction() + " of " + trainTexts.size() + " texts: one side would be empty."
                + " Give more text, another --test-fraction, or a --test file.");
      }
      trainTexts = split.train();
      testTexts = split.validation();
    }
    try (WordPieceTokenizer tok = WordPieceTokenizer.load(c.tokenizer(), c.maxLength())) {
      train = TextData.encodeIndexed(tok, trainTexts);
      batcher = new Batcher(c.batchSize(), c.maxLength(), tok.padId());
      order = c.batchOrder(batcher);
      test = batcher.batches(TextData.encodeIndexed(tok, testTexts));
    }
    return String.format(
        "data: %d train and %d held-out texts (unlabelled: only the text column is read) to distil the dense model's '%s' into the CoDA model",
        train.size(), test.size(), HIDDEN);
  }

  /**
   * The texts of {@code file}: a JSONL file needs only the text column (no labels, the point of
   * this task); other formats are read as labelled data and their labels ignored.
   */
  private static List<String> texts(Path file, DataConfig c) {
    String name = String.valueOf(file.getFileName()).toLowerCase(Locale.ROOT);
    if (!(name.endsWith(".jsonl") || name.endsWith(".ndjson")) || !Files.isRegularFile(file)) {
      return TextDatasets.read(file, c.textColumn(), c.labelColumn()).stream().map(TextExample::text).toList();
    }
    List<String> out = new ArrayList<>();
    try (BufferedReader in = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
      int lineNo = 0;
      for (String line = in.readLine(); line != null; line = in.readLine()) {
        lineNo++;
        if (line.isBlank()) continue;
        JsonElement e;
        try {
          e = JsonParser.parseString(line);
        } catch (JsonParseException ex) {
          throw new DataFileException(file, lineNo, "not valid JSON. Each line must be one object such as {\"text\": \"...\"}.", ex);
        }
        JsonElement t = e.isJsonObject() ? e.getAsJsonObject().get(c.textColumn()) : null;
        if (t == null || !t.isJsonPrimitive()) {
          throw new DataFileException(
              file, lineNo, "no string '" + c.textColumn() + "'. Each line needs the text column (--text-column); labels are not needed.");
        }
        if (!t.getAsString().isBlank()) out.add(t.getAsString());
      }
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot read " + file + ": " + e.getMessage(), e);
    }
    if (out.isEmpty()) throw new DataFileException(file, 0, "no texts. Add one JSON object with a '" + c.textColumn() + "' per line.");
    return out;
  }

  @Override
  public Optional<TaskHead> head(Model model) {
    if (CodaLayers.read(model).isEmpty()) {
      throw new IllegalArgumentException(
          "--task coda-distill trains CoDA layers, but the model has none. Use a recipe with 'method: coda'"
              + " (examples/recipes/coda-distill.yaml).");
    }
    return Optional.empty();
  }

  @Override
  public Objective objective(Model model) {
    Model copy = model.copy();
    Value residual = CodaDistillation.addResidual(copy, HIDDEN, "attention_mask");
    width = residual.shape().flatMap(s -> s.rank() == 3 && s.dim(2).isFixed() ? Optional.of(s.dim(2).value()) : Optional.empty())
        .orElseThrow(() -> new IllegalArgumentException("CoDA distillation needs the hidden width of '" + HIDDEN + "' to be static"));
    inputs = TextData.batchInputs(copy);
    return Objective.of(copy, CodaDistillation.RESIDUAL, Loss.meanSquaredError());
  }

  @Override
  public List<TaskBatch> trainBatches(long seed) {
    List<TaskBatch> out = new ArrayList<>();
    for (Batch b : order.epoch(train, seed)) out.add(feed(b));
    return out;
  }

  /** The tokens and a zero target shaped like the residual [b, n, width]. */
  private TaskBatch feed(Batch b) {
    if (inputs == null) throw new IllegalStateException("CodaDistillTask: call objective(model) before asking for batches");
    Map<String, Tensor> f = new LinkedHashMap<>(TextData.tokens(b, inputs));
    long[] dims = {b.size(), b.sequenceLength(), width};
    f.put(Objective.DEFAULT_LABELS, DenseTensor.ofFloats(Objective.DEFAULT_LABELS, dims, new float[Math.toIntExact(dims[0] * dims[1] * dims[2])]));
    return TaskBatch.of(f, b.size());
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
    MeanLoss loss = new MeanLoss();
    for (Batch b : test) loss.add(trainer.evalStep(feed(b).feeds()), b.size());
    double mse = loss.mean();
    return Evaluation.of(mse, Map.of("distill_mse", mse));
  }

  @Override
  public Model finish(Model trained) {
    CodaDistillation.strip(trained);
    describe(trained);
    return trained;
  }
}
