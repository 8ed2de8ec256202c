package dev.graft.tools.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.fixtures.Datasets;
import dev.graft.fixtures.PretrainedModels;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.io.ModelIO;
import dev.graft.trainer.data.TextDatasets;
import dev.graft.trainer.data.TextExample;
import dev.graft.trainer.data.WordPieceTokenizer;
import dev.graft.trainer.eval.Evaluator;
import dev.graft.trainer.run.Pipeline;
import dev.graft.trainer.run.RunListener;
import dev.graft.trainer.task.EmbedTask;
import dev.graft.trainer.task.HeadKind;
import dev.langchain4j.model.embedding.EmbeddingModel;
import dev.langchain4j.model.embedding.onnx.OnnxEmbeddingModel;
import dev.langchain4j.model.embedding.onnx.PoolingMode;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The embed task end to end on the real all-MiniLM-L6-v2: LoRA tuned from (text, positive) pairs
 * with in-batch negatives, exported merged, and the export is a drop-in: it has exactly the base
 * model's inputs and outputs, and langchain4j's in-process ONNX embedding model (the loader Java
 * users run MiniLM with) loads base and tuned file through the same code. The oracle for what
 * langchain4j computes is Graft's own mean-pooling graph on ONNX Runtime.
 */
class EmbedDropInTest {
  private static final List<String> PROBES =
      List.of("The food was great and the staff friendly.", "Worst service ever.", "I would come back.");

  @Test
  void tunedEmbeddingsLoadThroughTheBaseModelsLoaderUnchanged(@TempDir Path dir) throws Exception {
    List<TextExample> yelp = TextDatasets.read(Datasets.sentiment("yelp"));
    // Pairs: consecutive sentences of one label stand in for (query, answer) pairs.
    List<String> rows = new ArrayList<>();
    for (int i = 0; i + 1 < 200 && rows.size() < 80; i++) {
      if (yelp.get(i).label().equals(yelp.get(i + 1).label())) {
        rows.add(yelp.get(i).text() + "\t" + yelp.get(i + 1).text());
        i++;
      }
    }
    Path train = write(dir.resolve("train.tsv"), rows.subList(0, 60));
    Path test = write(dir.resolve("test.tsv"), rows.subList(60, rows.size()));
    Path run = dir.resolve("run");
    CliRun trained = CliRun.of("train", "--recipe", Path.of("..", "examples", "recipes", "lora.yaml").toString(),
        "--task", "embed", "--train", train.toString(), "--test", test.toString(), "--pair-column", "positive",
        "--max-length", "32", "--batch-size", "16", "--epochs", "1", "--lr", "5e-3", "--threads", "2",
        "--out", run.toString());
    assertThat(trained.exit()).as(trained.err()).isZero();
    assertThat(trained.out()).contains("60 train and").contains("test recall_at_1").doesNotContain("head:");

    Path merged = dir.resolve("merged.onnx");
    CliRun export = CliRun.of("export", run.resolve("tuned.onnx").toString(), merged.toString());
    assertThat(export.exit()).as(export.err()).isZero();

    Path base = PretrainedModels.miniLm();
    assertThat(signature(ModelIO.load(merged))).isEqualTo(signature(ModelIO.load(base)));

    Path tokenizer = PretrainedModels.miniLmTokenizer();
    float[][] baseL4j = embed(new OnnxEmbeddingModel(base, tokenizer, PoolingMode.MEAN));
    float[][] tunedL4j = embed(new OnnxEmbeddingModel(merged, tokenizer, PoolingMode.MEAN));
    float[][] baseGraft = graft(base, tokenizer);
    float[][] tunedGraft = graft(merged, tokenizer);
    double moved = 0;
    for (int i = 0; i < PROBES.size(); i++) {
      for (int k = 0; k < baseL4j[i].length; k++) {
        assertThat((double) baseL4j[i][k]).isCloseTo(baseGraft[i][k], within(1e-4));
        assertThat((double) tunedL4j[i][k]).isCloseTo(tunedGraft[i][k], within(1e-4));
        moved = Math.max(moved, Math.abs(tunedL4j[i][k] - baseL4j[i][k]));
      }
    }
    assertThat(moved).as("tuning changed the embeddings").isGreaterThan(1e-3);

    // graft eval reads the task from the export's metadata and scores retrieval.
    CliRun eval = CliRun.of("eval", merged.toString(), "--data", test.toString(), "--pair-column", "positive",
        "--max-length", "32", "--json");
    assertThat(eval.exit()).as(eval.err()).isZero();
    JsonObject m = JsonParser.parseString(eval.out()).getAsJsonObject();
    assertThat(m.keySet()).containsExactly("recall_at_1", "recall_at_10", "mrr");
  }

  /** Inputs and outputs: name, element type and shape, in order. */
  private static List<String> signature(Model m) {
    List<String> out = new ArrayList<>();
    for (Value v : m.graph().inputs()) if (!v.isInitializer()) out.add("in " + v.name() + " " + v.type().orElse(null));
    for (Value v : m.graph().outputs()) out.add("out " + v.name() + " " + v.type().orElse(null));
    return out;
  }

  private static float[][] embed(EmbeddingModel model) {
    float[][] out = new float[PROBES.size()][];
    for (int i = 0; i < out.length; i++) out[i] = model.embed(PROBES.get(i)).content().vector();
    return out;
  }

  /** Graft's mean pooling on ORT, normalised to unit length as langchain4j returns it. */
  private static float[][] graft(Path model, Path tokenizer) {
    Model pooled = EmbedTask.embeddingModel(Pipeline.load(model, RunListener.SILENT), HeadKind.MEAN);
    try (Evaluator ev = Evaluator.open(pooled, 1); WordPieceTokenizer tok = WordPieceTokenizer.load(tokenizer, 256)) {
      float[][] e = ev.logits(PROBES, tok, 8, Evaluator.Progress.NONE);
      for (float[] row : e) {
        double n = 0;
        for (float x : row) n += x * x;
        for (int k = 0; k < row.length; k++) row[k] /= (float) Math.sqrt(n);
      }
      return e;
    }
  }

  private static Path write(Path file, List<String> rows) throws Exception {
    StringBuilder s = new StringBuilder("text\tpositive\n");
    rows.forEach(r -> s.append(r).append('\n'));
    return Files.writeString(file, s, StandardCharsets.UTF_8);
  }
}
