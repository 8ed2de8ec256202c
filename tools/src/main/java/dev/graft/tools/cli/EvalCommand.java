package dev.graft.tools.cli;

import com.google.gson.GsonBuilder;
import com.google.gson.JsonObject;
import dev.graft.ir.Model;
import dev.graft.ir.io.ModelIO;
import dev.graft.trainer.data.TextDatasets;
import dev.graft.trainer.data.TextExample;
import dev.graft.trainer.data.WordPieceTokenizer;
import dev.graft.trainer.eval.EvalReport;
import dev.graft.trainer.eval.Evaluator;
import dev.graft.trainer.eval.OodMetrics;
import dev.graft.trainer.eval.Predictions;
import dev.graft.trainer.eval.RegressionMetrics;
import dev.graft.trainer.eval.RetrievalMetrics;
import dev.graft.trainer.run.Pipeline;
import dev.graft.trainer.run.RunListener;
import dev.graft.trainer.task.ClassifyTask;
import dev.graft.trainer.task.EmbedTask;
import dev.graft.trainer.task.HeadKind;
import dev.graft.trainer.task.RegressTask;
import dev.graft.trainer.task.Task;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code graft eval}: scores a model for the task its metadata names ({@code graft.task}, written by
 * {@code graft train}; {@code --task} for a model without it): accuracy, macro-F1 and the
 * confusion matrix (classify, with OOD scores on request); RMSE, MAE, Pearson, Spearman
 * (regress); recall@1, recall@10 and MRR of retrieval (embed).
 */
@Command(
    name = "eval",
    mixinStandardHelpOptions = true,
    versionProvider = GraftVersion.class,
    description = {
      "Evaluate a model on labelled data for the task it was trained for (its metadata says which;"
          + " --task for a model trained elsewhere). classify (a 'logits' output): accuracy, per-class"
          + " precision/recall/F1, macro-F1 and the confusion matrix. regress: RMSE, MAE, Pearson and"
          + " Spearman. embed (token embeddings, mean-pooled here): recall@1, recall@10 and MRR of"
          + " retrieval, of each text's --pair-column positive among all positives, or of a same-label"
          + " text among the others.",
      "With --ood, also how well the maximum softmax probability and the energy score tell the"
          + " in-distribution data from the out-of-distribution data: AUROC and the FPR at 95%%"
          + " TPR (in-distribution as positives)."
    },
    footerHeading = "%nExamples:%n",
    footer = {
      "  graft eval runs/lora/tuned.onnx --data test.tsv     or --data sentiment:yelp",
      "  graft eval merged.onnx --data test.csv --json",
      "  graft eval runs/lora/tuned.onnx --data test.tsv --ood ood.csv",
      "  graft eval runs/regress/tuned.onnx --data test.tsv  task from the model",
      "  graft eval model.onnx --task embed --data test.tsv  the base as embedder"
    })
final class EvalCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Parameters(index = "0", paramLabel = "MODEL", description = "The classifier to evaluate.")
  Path model;

  @Option(names = "--data", required = true, paramLabel = "DATA", split = ",",
      description = "Labelled data: CSV/TSV with a header, JSONL, JSON or sentiment[:source].")
  List<String> data;

  @Option(names = "--ood", paramLabel = "DATA", split = ",",
      description = "Out-of-distribution texts (labels are ignored).")
  List<String> ood = List.of();

  @Option(names = "--task", paramLabel = "TASK",
      description = "classify, regress or embed. Default: the model's metadata (graft.task), else classify.")
  String task;

  @Option(names = "--pair-column", paramLabel = "NAME",
      description = "embed: the column holding each text's positive. Default: retrieve within labels.")
  String pairColumn = "";

  @Option(names = "--json", description = "Print one JSON object (keys accuracy, macroF1, ... and ood).")
  boolean json;

  @Option(names = "--text-column", paramLabel = "NAME", description = "Default: ${DEFAULT-VALUE}.")
  String textColumn = "text";

  @Option(names = "--label-column", paramLabel = "NAME", description = "Default: ${DEFAULT-VALUE}.")
  String labelColumn = "label";

  @Option(names = "--tokenizer", paramLabel = "FILE",
      description = "Default: tokenizer.json beside MODEL, else the embedded all-MiniLM-L6-v2's.")
  Path tokenizer;

  @Option(names = "--max-length", paramLabel = "TOKENS", description = "Default: ${DEFAULT-VALUE}.")
  int maxLength = 128;

  @Option(names = "--batch-size", paramLabel = "N", description = "Default: ${DEFAULT-VALUE}.")
  int batchSize = 64;

  @Option(names = "--threads", paramLabel = "N", description = "ORT intra-op threads; 0 lets it choose.")
  int threads = 0;

  @Override
  public Integer call() {
    ModelPaths.requireReadableModel(model);
    String t = task;
    if (t == null) {
      Model m = ModelIO.load(model);
      t = m.metadata().getOrDefault(Task.METADATA_KEY, ClassifyTask.NAME);
    }
    switch (t) {
      case ClassifyTask.NAME -> {}
      case RegressTask.NAME -> {
        return print(regress());
      }
      case EmbedTask.NAME -> {
        return print(embed());
      }
      default -> throw new IllegalArgumentException(
          "Unknown task '" + t + "': graft eval scores classify, regress and embed models.");
    }
    EvalReport report = evaluate(model, read(data), read(ood), DataSources.tokenizer(tokenizer, model),
        maxLength, batchSize, threads, json ? null : spec.commandLine().getErr());
    PrintWriter out = spec.commandLine().getOut();
    out.println(json ? report.toJson() : report.toString());
    out.flush();
    return 0;
  }

  private int print(Map<String, Double> metrics) {
    PrintWriter out = spec.commandLine().getOut();
    if (json) {
      JsonObject o = new JsonObject();
      metrics.forEach(o::addProperty);
      out.println(new GsonBuilder().disableHtmlEscaping().create().toJson(o));
    } else {
      metrics.forEach((k, v) -> out.printf(Locale.ROOT, "%s %.4f%n", k, v));
    }
    out.flush();
    return 0;
  }

  private Map<String, Double> regress() {
    List<TextExample> examples = read(data);
    double[] truth = new double[examples.size()];
    for (int i = 0; i < truth.length; i++) {
      try {
        truth[i] = Double.parseDouble(examples.get(i).label());
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException("regress: the label of example " + (i + 1) + " is '"
            + examples.get(i).label() + "', not a number. Pick the numeric column with --label-column.");
      }
    }
    float[][] predicted;
    try (Evaluator ev = Evaluator.open(model, threads);
        WordPieceTokenizer tok = WordPieceTokenizer.load(DataSources.tokenizer(tokenizer, model), maxLength)) {
      predicted = ev.logits(examples.stream().map(TextExample::text).toList(), tok, batchSize,
          progress(json ? null : spec.commandLine().getErr(), "eval"));
    }
    double[] p = new double[predicted.length];
    for (int i = 0; i < p.length; i++) p[i] = predicted[i][0];
    RegressionMetrics m = RegressionMetrics.of(truth, p);
    Map<String, Double> out = new LinkedHashMap<>();
    out.put("rmse", m.rmse());
    out.put("mae", m.mae());
    out.put("pearson", m.pearson());
    out.put("spearman", m.spearman());
    return out;
  }

  private Map<String, Double> embed() {
    Model embedder = EmbedTask.embeddingModel(Pipeline.load(model, RunListener.SILENT), HeadKind.MEAN);
    List<TextExample> examples = new ArrayList<>();
    for (Path p : DataSources.resolve(data)) {
      examples.addAll(TextDatasets.read(p, textColumn, pairColumn.isEmpty() ? labelColumn : pairColumn));
    }
    RetrievalMetrics r;
    try (Evaluator ev = Evaluator.open(embedder, threads);
        WordPieceTokenizer tok = WordPieceTokenizer.load(DataSources.tokenizer(tokenizer, model), maxLength)) {
      Evaluator.Progress progress = progress(json ? null : spec.commandLine().getErr(), "embed");
      float[][] texts = ev.logits(examples.stream().map(TextExample::text).toList(), tok, batchSize, progress);
      if (!pairColumn.isEmpty()) {
        float[][] positives = ev.logits(examples.stream().map(TextExample::label).toList(), tok, batchSize, progress);
        r = RetrievalMetrics.of(texts, positives, i -> Set.of(i), i -> -1);
      } else {
        Map<String, Set<Integer>> byLabel = new LinkedHashMap<>();
        for (int i = 0; i < examples.size(); i++) {
          byLabel.computeIfAbsent(examples.get(i).label(), k -> new HashSet<>()).add(i);
        }
        r = RetrievalMetrics.of(texts, texts, i -> byLabel.get(examples.get(i).label()), i -> i);
      }
    }
    Map<String, Double> out = new LinkedHashMap<>();
    out.put("recall_at_1", r.recallAt1());
    out.put("recall_at_10", r.recallAt10());
    out.put("mrr", r.mrr());
    return out;
  }

  private List<TextExample> read(List<String> specs) {
    List<TextExample> all = new ArrayList<>();
    for (Path p : DataSources.resolve(specs)) all.addAll(TextDatasets.read(p, textColumn, labelColumn));
    return all;
  }

  /** Evaluates; progress goes to {@code progressTo} unless it is null. */
  static EvalReport evaluate(
      Path model, List<TextExample> data, List<TextExample> ood, Path tokenizerFile,
      int maxLength, int batchSize, int threads, PrintWriter progressTo) {
    try (Evaluator ev = Evaluator.open(model, threads);
        WordPieceTokenizer tok = WordPieceTokenizer.load(tokenizerFile, maxLength)) {
      Predictions p = ev.predict(data, tok, batchSize, progress(progressTo, "eval"));
      Optional<OodMetrics> oodMetrics = Optional.empty();
      if (!ood.isEmpty()) {
        float[][] outLogits =
            ev.logits(ood.stream().map(TextExample::text).toList(), tok, batchSize, progress(progressTo, "ood"));
        oodMetrics = Optional.of(OodMetrics.of(p.logits(), outLogits));
      }
      return new EvalReport(p.metrics(), oodMetrics);
    }
  }

  private static Evaluator.Progress progress(PrintWriter to, String label) {
    if (to == null) return Evaluator.Progress.NONE;
    boolean interactive = ProgressBar.consoleIsInteractive();
    long start = System.nanoTime();
    ProgressBar[] bar = new ProgressBar[1];
    return (done, total) -> {
      if (bar[0] == null) bar[0] = new ProgressBar(to, interactive, label, total);
      bar[0].update(done, "", done / ((System.nanoTime() - start) / 1e9), "batch");
    };
  }
}
