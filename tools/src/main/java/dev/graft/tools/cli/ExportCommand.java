package dev.graft.tools.cli;

import dev.graft.export.AdapterExport;
import dev.graft.export.ExportOptions;
import dev.graft.export.ExportReport;
import dev.graft.export.ExportVerifier;
import dev.graft.export.MergedExport;
import dev.graft.ir.Model;
import dev.graft.ir.convert.WorkingModels;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code graft export}: fold a tuned model into a deployable one, or write its adapter alone. */
@Command(
    name = "export",
    mixinStandardHelpOptions = true,
    versionProvider = GraftVersion.class,
    description = {
      "Export a tuned model. --merge (the default) folds every mergeable delta (LoRA,"
          + " LayerNorm-affine, BitFit, IA3) into the frozen weights and keeps other modules"
          + " (adapters, the head) as nodes; --adapter-only writes the trained parameters alone.",
      "Either way the export is checked on ONNX Runtime against the tuned model on held-out"
          + " inputs before anything is written (max difference <= 1e-4 for fp32, 2e-2 with"
          + " --fp16); when the check fails nothing is written."
    },
    footerHeading = "%nExamples:%n",
    footer = {
      "  graft export run/tuned.onnx merged.onnx",
      "  graft export run/tuned.onnx merged.onnx --fp16 --external-data --ir-version 8",
      "  graft export run/tuned.onnx adapter/ --adapter-only --base all-minilm-l6-v2.onnx",
      "      adapter.safetensors, adapter_config.json, and for LoRA adapter.onnx_adapter and",
      "      base_with_lora_inputs.onnx (one ORT session serving many adapters)"
    })
final class ExportCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Parameters(index = "0", paramLabel = "TUNED", description = "The tuned .onnx (from graft rewrite or graft train).")
  Path tuned;

  @Parameters(
      index = "1",
      paramLabel = "OUT",
      description = "The merged .onnx to write, or with --adapter-only a new (or empty) folder.")
  Path out;

  @Option(names = "--merge", description = "Fold deltas into the weights and write one model (the default).")
  boolean merge;

  @Option(names = "--adapter-only", description = "Write only the trained parameters and their config into OUT.")
  boolean adapterOnly;

  @Option(names = "--fp16", description = "Store float weights as fp16 (each read through a Cast; the graph computes in fp32).")
  boolean fp16;

  @Option(names = "--external-data", description = "Put tensors of 1 KiB or more in OUT.data beside OUT.")
  boolean externalData;

  @Option(
      names = "--ir-version",
      paramLabel = "N",
      description = "The IR version to declare: at least what the opset needs, at most what the"
          + " ONNX Runtime in use loads (10 and below load in every ORT since 1.16).")
  Long irVersion;

  @Option(
      names = "--base",
      paramLabel = "BASE",
      description = "With --adapter-only: the base .onnx the model was tuned from; its SHA-256 goes"
          + " into the config, and applying the adapter to another base is refused.")
  Path base;

  @Override
  public Integer call() {
    checkOptions();
    ModelPaths.requireReadableModel(tuned);
    PrintWriter stdout = spec.commandLine().getOut();
    Model model = WorkingModels.load(tuned);
    if (adapterOnly) {
      ModelPaths.requireReadableModel(base);
      AdapterExport.AdapterReport r = AdapterExport.write(model, base, out);
      stdout.println("Verified: applied to the base, " + r.applied().summary());
      if (r.ortAdapter() != null) {
        stdout.println("Verified: ORT LoRA adapter on " + AdapterExport.BASE_WITH_INPUTS + ", " + r.ortAdapter().summary());
      }
      stdout.printf(
          "Wrote %s: %s (%s; %,d trained parameters)%n",
          out, String.join(", ", r.files()), String.join(", ", r.methods()), r.parameters());
    } else {
      ModelPaths.requireWritableTarget(out);
      ExportOptions options =
          ExportOptions.defaults().withFp16(fp16).withExternalData(externalData).withIrVersion(irVersion);
      ExportReport r = MergedExport.write(model, out, options);
      stdout.println("Folded: " + r.fold().summary());
      for (String f : r.fold().kept()) stdout.println("  kept as nodes: " + f);
      stdout.println("Verified: " + r.verification().summary());
      for (ExportVerifier.OutputDiff d : r.verification().outputs()) {
        stdout.printf("  %s: max |diff| %.3g%n", d.name(), d.maxAbsDiff());
      }
      stdout.println("Op census change:");
      for (String c : r.censusChange()) stdout.println("  " + c);
      stdout.printf(
          "Wrote %s (IR %d%s%s)%n",
          out,
          r.irVersion(),
          fp16 ? ", " + r.fp16Initializers() + " weights as fp16" : "",
          externalData ? ", external data in " + out.getFileName() + ".data" : "");
    }
    stdout.flush();
    return 0;
  }

  private void checkOptions() {
    if (merge && adapterOnly) {
      throw new ParameterException(spec.commandLine(), "--merge and --adapter-only exclude each other; choose one.");
    }
    if (adapterOnly) {
      if (base == null) {
        throw new ParameterException(
            spec.commandLine(),
            "--adapter-only needs --base BASE, the model TUNED was made from (its SHA-256 binds the adapter to it).");
      }
      if (fp16 || externalData || irVersion != null) {
        throw new ParameterException(
            spec.commandLine(), "--fp16, --external-data and --ir-version apply to merged exports only; drop them or drop --adapter-only.");
      }
    } else if (base != null) {
      throw new ParameterException(spec.commandLine(), "--base only applies with --adapter-only; add it or drop --base.");
    }
  }
}
