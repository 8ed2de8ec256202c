package dev.graft.tools.cli;

import ai.onnxruntime.OrtException;
import dev.graft.export.InferenceBench;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code graft bench}: inference latency and throughput of several models side by side. */
@Command(
    name = "bench",
    mixinStandardHelpOptions = true,
    versionProvider = GraftVersion.class,
    description = {
      "Measure inference latency and throughput of one or more models side by side, in one"
          + " process, on the same inputs ([batch, seq]: random token ids, a mask of ones, zero"
          + " token types): warm-up runs first, then --runs rounds in which each model runs once"
          + " in turn, so that other load on the machine falls on all of them alike.",
      "Prints per model the median, the 10th to 90th percentile and the minimum time per run,"
          + " the throughput in sequences per second at the median, and the speed-up over the"
          + " first model. Compare ratios within one bench; absolute times depend on the machine."
    },
    footerHeading = "%nExamples:%n",
    footer = {
      "  graft bench adapter.onnx coda.onnx --batch 8 --seq 128 --threads 2",
      "  graft bench merged-lora.onnx adapter.onnx coda.onnx --batch 1 --seq 512 --runs 50"
    })
final class BenchCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Parameters(arity = "1..*", paramLabel = "MODEL", description = "The .onnx models to compare.")
  List<Path> models;

  @Option(names = "--batch", paramLabel = "B", description = "Sequences per run. Default: ${DEFAULT-VALUE}.")
  int batch = 8;

  @Option(names = "--seq", paramLabel = "S", description = "Tokens per sequence. Default: ${DEFAULT-VALUE}.")
  int seq = 128;

  @Option(names = "--threads", paramLabel = "T", description = "ORT intra-op threads; 0 lets it choose. Default: ${DEFAULT-VALUE}.")
  int threads = 0;

  @Option(names = "--runs", paramLabel = "N", description = "Timed runs per model. Default: ${DEFAULT-VALUE}.")
  int runs = 20;

  @Option(names = "--warmup", paramLabel = "N", description = "Untimed runs per model first. Default: ${DEFAULT-VALUE}.")
  int warmup = 3;

  @Override
  public Integer call() throws OrtException {
    for (Path m : models) ModelPaths.requireReadableModel(m);
    InferenceBench.Config config;
    try {
      config = new InferenceBench.Config(batch, seq, threads, warmup, runs, 42);
    } catch (IllegalArgumentException e) {
      throw new UserError(e.getMessage());
    }
    List<InferenceBench.Result> results = InferenceBench.run(models, config);
    PrintWriter out = spec.commandLine().getOut();
    out.printf(Locale.ROOT, "batch %d, seq %d, threads %s, %d warm-up + %d timed runs each%n",
        batch, seq, threads == 0 ? "ORT default" : threads, warmup, runs);
    out.printf(Locale.ROOT, "%-40s %11s %21s %9s %12s %9s%n", "model", "median ms", "p10-p90 ms", "min ms", "seq/s", "speed-up");
    double first = results.get(0).medianMs();
    for (InferenceBench.Result r : results) {
      out.printf(Locale.ROOT, "%-40s %11.2f %10.2f-%-10.2f %9.2f %12.1f %8.2fx%n",
          shorten(r.model().toString(), 40), r.medianMs(), r.p10Ms(), r.p90Ms(), r.minMs(), r.throughput(), first / r.medianMs());
    }
    out.flush();
    return 0;
  }

  private static String shorten(String s, int n) {
    return s.length() <= n ? s : "..." + s.substring(s.length() - n + 3);
  }
}
