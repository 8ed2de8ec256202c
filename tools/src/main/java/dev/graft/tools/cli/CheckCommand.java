package dev.graft.tools.cli;

import dev.graft.export.ExportVerifier;
import dev.graft.tools.check.RuntimeCheck;
import dev.graft.tools.check.TargetRuntime;
import java.io.PrintWriter;
import java.nio.file.Files;
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
          + " opencv (OpenCV's DNN module, from Maven Central; it runs a copy with the inputs fixed to"
          + " the feeds' shapes and the shape computations folded by ONNX Runtime, the static graph"
          + " its importer needs), ort-java (Graft's own, for timing).",
      "Adapters: with --adapter, MODEL is the base_with_lora_inputs.onnx of 'graft export"
          + " --adapter-only' and each adapter.onnx_adapter is served in turn by one session per"
          + " runtime: ORT Java through ORT's LoRA adapter API, ORT Node.js (which lacks that API)"
          + " by feeding the adapter's tensors as the inputs they name.",
      "Exit status 1 when a runtime refuses the model or differs by more than --tolerance."
    },
    footerHeading = "%nExamples:%n",
    footer = {
      "  graft check merged.onnx --reference run/tuned.onnx --runtime ort-node,ort-java",
      "  graft check merged.onnx --runtime ort-node --runs 50 --threads 1",
      "  graft check adapter/base_with_lora_inputs.onnx --adapter adapter/adapter.onnx_adapter \\",
      "      --reference run/tuned.onnx --runtime ort-node,ort-java --runs 5",
      "  (--runtime opencv runs OpenCV's DNN on a fixed-shape copy with the shape computations folded)"
    })
final class CheckCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Parameters(index = "0", paramLabel = "MODEL", description = "The .onnx to check (an export).")
  Path model;

  @Option(
      names = "--reference",
      paramLabel = "TUNED",
      split = ",",
      description =
          "The model whose outputs MODEL must reproduce (default: MODEL itself in ORT Java). With"
              + " --adapter: one per adapter, in the same order (default: MODEL with the adapter"
              + " active in ORT Java).")
  List<Path> references = List.of();

  @Option(
      names = "--adapter",
      paramLabel = "FILE",
      split = ",",
      description =
          "ONNX Runtime adapter files (adapter.onnx_adapter from 'graft export --adapter-only'),"
              + " served one after the other by one session of MODEL, which is then the"
              + " base_with_lora_inputs.onnx written beside them. Several: a,b with --reference"
              + " tunedA,tunedB.")
  List<Path> adapters = List.of();

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
    if (adapters.isEmpty() ? references.size() > 1 : !references.isEmpty() && references.size() != adapters.size()) {
      throw new ParameterException(
          spec.commandLine(),
          "Got " + references.size() + " --reference model(s) for " + adapters.size() + " --adapter file(s): pass"
              + (adapters.isEmpty() ? " at most one --reference." : " one --reference per --adapter, in the same order, or none."));
    }
    ModelPaths.requireReadableModel(model);
    for (Path reference : references) ModelPaths.requireReadableModel(reference);
    for (Path adapter : adapters) {
      if (!Files.isRegularFile(adapter)) {
        throw new UserError(
            "Adapter file " + adapter + " does not exist; pass the adapter.onnx_adapter that graft export --adapter-only wrote.");
      }
    }
    PrintWriter out = spec.commandLine().getOut();
    RuntimeCheck.Report r =
        RuntimeCheck.check(
            model, references, adapters, runtimes, new TargetRuntime.RunSettings(warmup, runs, threads), tolerance, seed);
    out.println(
        "Inputs: "
            + r.feedShapes().entrySet().stream()
                .map(e -> e.getKey() + " " + Arrays.toString(e.getValue()))
                .collect(Collectors.joining(", "))
            + String.format("; %d warm-up, %d timed runs, %d thread%s", warmup, runs, threads, threads == 1 ? "" : "s"));
    for (RuntimeCheck.Result ref : r.references()) {
      out.printf("  %s: median %.2f ms%n", ref.runtime() + " (" + ref.engine() + ")", ref.medianMs());
    }
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
