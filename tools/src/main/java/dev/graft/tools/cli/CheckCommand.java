package dev.graft.tools.cli;

import dev.graft.export.ExportVerifier;
import dev.graft.tools.check.RuntimeCheck;
import dev.graft.tools.check.TargetRuntime;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code graft check}: run a model in other runtimes and compare with Graft's ONNX Runtime. */
@Command(
    name = "check",
    mixinStandardHelpOptions = true,
    versionProvider = GraftVersion.class,
    description = {
      "Run MODEL in other inference runtimes and compare every output with the reference:"
          + " REFERENCE (the tuned model MODEL was exported from), or MODEL itself, run by Graft's"
          + " ONNX Runtime Java build, on the held-out inputs export verification uses.",
      "Per runtime: whether it loads and runs the model (and if not, why, the operator it"
          + " refuses and the export option that avoids it), the max difference, and the median"
          + " latency of the timed runs after warm-up.",
      "Runtimes: ort-node (ONNX Runtime for Node.js, onnxruntime-node from npm, installed once"
          + " with npm install --ignore-scripts into ~/.cache/graft/npm; needs node and npm),"
          + " opencv (OpenCV's DNN module, from Maven Central), ort-java (Graft's own, for timing).",
      "Exit status 1 when a runtime refuses the model or differs by more than --tolerance."
    },
    footerHeading = "%nExamples:%n",
    footer = {
      "  graft check merged.onnx --reference run/tuned.onnx --runtime ort-node,ort-java",
      "  graft check merged.onnx --runtime ort-node --runs 50 --threads 1",
      "  (--runtime opencv adds OpenCV's DNN; it refuses the BERT-family exports today, naming the op)"
    })
final class CheckCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Parameters(index = "0", paramLabel = "MODEL", description = "The .onnx to check (an export).")
  Path model;

  @Option(
      names = "--reference",
      paramLabel = "TUNED",
      description = "The model whose outputs MODEL must reproduce (default: MODEL itself in ORT Java).")
  Path reference;

  @Option(
      names = "--runtime",
      paramLabel = "NAME",
      split = ",",
      description = "Runtimes to run MODEL in: ort-node, opencv, ort-java. Default: ${DEFAULT-VALUE}.")
  List<String> runtimes = List.of("ort-node", "opencv");

  @Option(names = "--warmup", paramLabel = "N", description = "Untimed runs first. Default: ${DEFAULT-VALUE}.")
  int warmup = 3;

  @Option(names = "--runs", paramLabel = "N", description = "Timed runs; the median is reported. Default: ${DEFAULT-VALUE}.")
  int runs = 10;

  @Option(names = "--threads", paramLabel = "N", description = "Intra-op threads in every runtime. Default: ${DEFAULT-VALUE}.")
  int threads = 2;

  @Option(
      names = "--tolerance",
      paramLabel = "T",
      description = "Largest accepted |difference| per output element. Default: 1e-4.")
  double tolerance = ExportVerifier.FP32_TOLERANCE;

  @Option(names = "--seed", paramLabel = "N", description = "Seed of the held-out inputs. Default: ${DEFAULT-VALUE}.")
  long seed = 20240611L;

  @Override
  public Integer call() {
    for (String r : runtimes) {
      if (!RuntimeCheck.RUNTIMES.containsKey(r)) {
        throw new ParameterException(
            spec.commandLine(), "Unknown runtime '" + r + "'; choose from " + String.join(", ", RuntimeCheck.RUNTIMES.keySet()) + ".");
      }
    }
    if (warmup < 0 || runs < 1 || threads < 1 || !(tolerance >= 0)) {
      throw new ParameterException(
          spec.commandLine(), "--warmup must be >= 0, --runs and --threads >= 1, --tolerance >= 0.");
    }
    ModelPaths.requireReadableModel(model);
    if (reference != null) ModelPaths.requireReadableModel(reference);
    PrintWriter out = spec.commandLine().getOut();
    java.util.Map<String, dev.graft.ir.tensor.Tensor> extra = java.util.Map.of();
    RuntimeCheck.Report r =
        RuntimeCheck.check(
            model, reference, extra, runtimes, new TargetRuntime.RunSettings(warmup, runs, threads), tolerance, seed);
    out.println(
        "Inputs: "
            + r.feedShapes().entrySet().stream()
                .map(e -> e.getKey() + " " + Arrays.toString(e.getValue()))
                .collect(Collectors.joining(", "))
            + String.format("; %d warm-up, %d timed runs, %d thread%s", warmup, runs, threads, threads == 1 ? "" : "s"));
    out.printf("  %s: median %.2f ms%n", r.reference().runtime() + " (" + r.reference().engine() + ")", r.reference().medianMs());
    for (RuntimeCheck.Result res : r.results()) out.println("  " + res.summary());
    out.flush();
    if (!r.allPassed()) {
      long refused = r.results().stream().filter(x -> !x.loaded()).count();
      throw new UserError(
          (refused > 0 ? refused + " runtime(s) did not run the model" : "a runtime's outputs differ beyond the tolerance")
              + "; see the lines above.");
    }
    return 0;
  }
}
