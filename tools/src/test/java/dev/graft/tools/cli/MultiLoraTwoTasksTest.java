package dev.graft.tools.cli;

import static org.assertj.core.api.Assertions.assertThat;

import ai.onnxruntime.OrtLoraAdapter;
import ai.onnxruntime.OrtSession;
import dev.graft.export.MultiLora;
import dev.graft.fixtures.Datasets;
import dev.graft.fixtures.PretrainedModels;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.trainer.data.Batch;
import dev.graft.trainer.data.Batcher;
import dev.graft.trainer.data.EncodedExample;
import dev.graft.trainer.data.TextDatasets;
import dev.graft.trainer.data.TextExample;
import dev.graft.trainer.data.WordPieceTokenizer;
import dev.graft.trainer.eval.Evaluator;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Multi-LoRA serving: two LoRA adapters (with their heads) trained on different tasks, sentiment
 * and source domain, exported adapter-only, and served by ONE ORT session over the shared base
 * graph through OrtLoraAdapter. Each active adapter must reproduce its own tuned model's logits
 * (run as a separate model by ORT: the oracle), and the two must differ.
 */
class MultiLoraTwoTasksTest {
  private static final String QUICKSTART = Path.of("..", "examples", "recipes", "quickstart.yaml").toString();

  @Test
  void oneSessionServesASentimentAndADomainAdapter(@TempDir Path dir) throws Exception {
    // Task A: sentiment of Yelp reviews. Task B: is a sentence from Amazon or from IMDB?
    List<TextExample> sentiment = TextDatasets.read(Datasets.sentiment("yelp"));
    List<TextExample> domain = new ArrayList<>();
    for (String source : List.of("amazon", "imdb")) {
      for (TextExample e : TextDatasets.read(Datasets.sentiment(source))) domain.add(new TextExample(e.text(), source));
    }
    Path dataA = dir.resolve("sentiment.jsonl");
    Path dataB = dir.resolve("domain.jsonl");
    TextDatasets.writeJsonl(dataA, sentiment);
    TextDatasets.writeJsonl(dataB, domain);

    Path base = PretrainedModels.miniLm();
    Map<String, Path> adapters = new LinkedHashMap<>();
    Map<String, Path> tuned = new LinkedHashMap<>();
    for (Map.Entry<String, Path> task : Map.of("sentiment", dataA, "domain", dataB).entrySet()) {
      Path run = dir.resolve("run-" + task.getKey());
      CliRun train = CliRun.of("train", "--recipe", QUICKSTART, "--train", task.getValue().toString(),
          "--epochs", "1", "--max-length", "32", "--lr", "3e-3", "--out", run.toString());
      assertThat(train.exit()).as(train.err()).isZero();
      Path out = dir.resolve("adapter-" + task.getKey());
      CliRun export = CliRun.of("export", run.resolve("tuned.onnx").toString(), out.toString(),
          "--adapter-only", "--base", base.toString());
      assertThat(export.exit()).as(export.err()).isZero();
      adapters.put(task.getKey(), out);
      tuned.put(task.getKey(), run.resolve("tuned.onnx"));
    }
    // Both adapters were written against the same serving graph.
    Path servingA = adapters.get("sentiment").resolve("base_with_lora_inputs.onnx");
    Path servingB = adapters.get("domain").resolve("base_with_lora_inputs.onnx");
    assertThat(Files.readAllBytes(servingA)).isEqualTo(Files.readAllBytes(servingB));

    List<String> texts = List.of(
        "The food was wonderful and the staff were friendly.",
        "This phone broke after two days, do not buy it.",
        "The plot of this movie made no sense at all.",
        "Great battery life and a clear screen.");
    List<EncodedExample> encoded = new ArrayList<>();
    try (WordPieceTokenizer tok = WordPieceTokenizer.load(PretrainedModels.miniLmTokenizer(), 32)) {
      for (String t : texts) encoded.add(tok.encode(t));
      Batch b = new Batcher(texts.size(), 32, tok.padId()).batch(encoded);
      Map<String, Tensor> feeds = new LinkedHashMap<>();
      feeds.put(Evaluator.INPUT_IDS, DenseTensor.ofLongs(Evaluator.INPUT_IDS, b.shape(), b.inputIds()));
      feeds.put(Evaluator.ATTENTION_MASK, DenseTensor.ofLongs(Evaluator.ATTENTION_MASK, b.shape(), b.attentionMask()));
      feeds.put(Evaluator.TOKEN_TYPE_IDS, DenseTensor.ofLongs(Evaluator.TOKEN_TYPE_IDS, b.shape(), b.tokenTypeIds()));

      Map<String, float[]> served = new LinkedHashMap<>();
      try (OrtSession.SessionOptions o = MultiLora.sessionOptions();
          OrtSession session = ai.onnxruntime.OrtEnvironment.getEnvironment().createSession(servingA.toString(), o);
          OrtLoraAdapter a = OrtLoraAdapter.create(adapters.get("sentiment").resolve("adapter.onnx_adapter").toString());
          OrtLoraAdapter d = OrtLoraAdapter.create(adapters.get("domain").resolve("adapter.onnx_adapter").toString())) {
        // Switch back and forth in the one session.
        for (int round = 0; round < 2; round++) {
          served.put("sentiment", MultiLora.run(session, a, feeds).get("logits").toFloatArray());
          served.put("domain", MultiLora.run(session, d, feeds).get("logits").toFloatArray());
        }
      }
      for (String task : served.keySet()) {
        float[][] own;
        try (Evaluator ev = Evaluator.open(tuned.get(task), 1)) {
          own = ev.logits(List.of(b), Evaluator.Progress.NONE);
        }
        float[] got = served.get(task);
        for (int i = 0; i < own.length; i++) {
          for (int k = 0; k < own[i].length; k++) {
            assertThat((double) got[i * own[i].length + k]).as(task + " row " + i).isCloseTo(own[i][k], org.assertj.core.data.Offset.offset(1e-4));
          }
        }
      }
      assertThat(served.get("sentiment")).isNotEqualTo(served.get("domain"));
    }
  }
}
