package dev.graft.tools.cli;

import dev.graft.trainer.data.TextDatasets;
import dev.graft.trainer.data.TextExample;
import dev.graft.trainer.data.WordPieceTokenizer;
import dev.graft.trainer.eval.EvalReport;
import dev.graft.trainer.eval.Evaluator;
import dev.graft.trainer.eval.OodMetrics;
import dev.graft.trainer.eval.Predictions;
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

/** {@code graft eval}: accuracy, macro-F1 and the confusion matrix; OOD scores on request. */
@Command(
    name = "eval",
    mixinStandardHelpOptions = true,
    versionProvider = GraftVersion.class,
    description = {
      "Evaluate a text classifier (a model with a 'logits' output, e.g. RUN_DIR/tuned.onnx or a"
          + " merged export) on labelled data: accuracy, per-class precision/recall/F1,"
          + " macro-F1 and the confusion matrix.",
      "With --ood, also how well the maximum softmax probability and the energy score tell the"
          + " in-distribution data from the out-of-distribution data: AUROC and the FPR at 95%%"
          + " TPR (in-distribution as positives)."
    },
    footerHeading = "%nExamples:%n",
    footer = {
      "  graft eval runs/lora/tuned.onnx --data sentiment:yelp",
      "  graft eval merged.onnx --data test.csv --json",
      "  graft eval runs/lora/tuned.onnx --data sentiment:amazon --ood ood.csv"
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
    EvalReport report = evaluate(model, read(data), read(ood), DataSources.tokenizer(tokenizer, model),
        maxLength, batchSize, threads, json ? null : spec.commandLine().getErr());
    PrintWriter out = spec.commandLine().getOut();
    out.println(json ? report.toJson() : report.toString());
    out.flush();
    return 0;
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
