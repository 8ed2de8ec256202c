package dev.graft.tools.cli;

import dev.graft.export.AdapterExport;
import dev.graft.export.ExportOptions;
import dev.graft.export.ExportReport;
import dev.graft.export.ExportVerifier;
import dev.graft.export.MergedExport;
import dev.graft.export.OpsetExport;
import dev.graft.export.QuantizedExport;
import dev.graft.ir.tensor.Tensor;
import dev.graft.tools.check.OrtJavaRuntime;
import dev.graft.tools.check.RuntimeCheck;
import dev.graft.tools.check.TargetRuntime;
import dev.graft.trainer.data.TextDatasets;
import dev.graft.trainer.data.TextExample;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.ToDoubleFunction;
import dev.graft.ir.Model;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.ir.io.ModelIO;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
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
          + " --fp16); when the check fails nothing is written. An export of a large model"
          + " checks each merged weight, or each adapter module, on random rows instead (--verify"
          + " probe); --verify full forces the whole-model check."
    },
    footerHeading = "%nExamples:%n",
    footer = {
      "  graft export run/tuned.onnx merged.onnx",
      "  graft export run/tuned.onnx merged-fp16.onnx --fp16 --external-data --ir-version 8",
      "  graft export run/tuned.onnx merged13.onnx --opset 13 --ir-version 7",
      "  graft export run/tuned.onnx merged.onnx --verify full    (the whole-model check at any size)",
      "  graft export run/tuned.onnx int8.onnx --quantize int8 --data run/test-split.jsonl --max-accuracy-drop 0.01",
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

  @Option(
      names = "--keep-unmerged",
      description = "Keep LoRA over 4-bit MatMulNBits weights (ONNX Runtime GenAI int4 models) as nodes"
          + " beside them instead of refusing the merge; everything else still folds.")
  boolean keepUnmerged;

  @Option(
      names = "--verify",
      paramLabel = "HOW",
      description = "How the export is checked before it is written: auto (the default) is probe for a"
          + " model with 256 MiB or more of external data whose merged deltas are all linear branches (LoRA"
          + " and its kin), full otherwise; full runs TUNED and the export on ONNX Runtime and compares every"
          + " output; probe checks each merged weight W' against the tuned graph on 4 random rows x and"
          + " columns q (max |x·W'·q - (x·W + branch(x))·q|), inside the run that computes W', instead of two"
          + " whole-model sessions; none writes without a check. With --adapter-only, probe checks that the"
          + " adapter applied to the base rebuilds the tuned graph node for node and runs each module's branch"
          + " with the tensors read back from the written files (and through ORT's LoRA loader) on 4 random rows.")
  String verify = "auto";

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
      names = "--opset",
      paramLabel = "N",
      description = "Write the merged export at default-domain opset N: older (down to 11, for older"
          + " runtimes; each op whose schema changed is rewritten back, LayerNormalization is"
          + " decomposed, an op with no older form is refused by name) or newer. Verified like"
          + " every export.")
  Long opset;

  @Option(
      names = "--quantize",
      paramLabel = "int8",
      description = "Quantise the merged export's linear weights to int8 (per output channel, the"
          + " MatMulInteger form of ORT's dynamic quantisation; activations quantised at run time)."
          + " Needs --data: both models are scored on it first, and the int8 one is written only"
          + " when it loses at most --max-accuracy-drop.")
  String quantize;

  @Option(
      names = "--max-accuracy-drop",
      paramLabel = "D",
      description = "With --quantize: the largest accepted test-accuracy loss against fp32, as a"
          + " fraction (0.01 = one point). Default: ${DEFAULT-VALUE}.")
  double maxAccuracyDrop = 0.01;

  @Option(
      names = "--data",
      paramLabel = "TEST",
      split = ",",
      description = "With --quantize: labelled test data (as graft eval reads it: CSV/TSV with a header,"
          + " JSONL, JSON, sentiment[:source], or RUN_DIR/test-split.jsonl).")
  List<String> data;

  @Option(names = "--text-column", paramLabel = "NAME", description = "With --data. Default: ${DEFAULT-VALUE}.")
  String textColumn = "text";

  @Option(names = "--label-column", paramLabel = "NAME", description = "With --data. Default: ${DEFAULT-VALUE}.")
  String labelColumn = "label";

  @Option(names = "--max-length", paramLabel = "TOKENS", description = "With --data. Default: ${DEFAULT-VALUE}.")
  int maxLength = 128;

  @Option(
      names = "--tokenizer",
      paramLabel = "FILE",
      description = "With --data. Default: tokenizer.json beside TUNED, else the embedded all-MiniLM-L6-v2's.")
  Path tokenizer;

  @Option(
      names = "--base",
      paramLabel = "BASE",
      description = "With --adapter-only: the base .onnx the model was tuned from; its SHA-256 goes"
          + " into the config, and applying the adapter to another base is refused.")
  Path base;

  /**
   * An int8 base (MatMulInteger linears) of a tuned model that has none was dequantised before its
   * recipe ({@code Int8Dequantization}): the adapter belongs to that float form, not to the file.
   */
  private static void requireBaseOfTheTrainedForm(Model tuned, Path base) {
    if (tuned.graph().nodes().stream().anyMatch(n -> n.is("MatMulInteger"))) return;
    long int8 = ModelIO.load(base).graph().nodes().stream().filter(n -> n.is("MatMulInteger")).count();
    if (int8 == 0) return;
    throw new UserError(
        "BASE " + base + " is an int8 model (" + int8 + " MatMulInteger linears), and the tuned model was trained on"
            + " its float form (graft train and graft rewrite dequantise an int8 model before a recipe), so an adapter"
            + " does not apply to it. Export the tuned model whole instead: graft export TUNED OUT (add --quantize int8"
            + " to quantise it again).");
  }

  @Override
  public Integer call() {
    checkOptions();
    ModelPaths.requireReadableModel(tuned);
    PrintWriter stdout = spec.commandLine().getOut();
    Model model = WorkingModels.load(tuned);
    if (adapterOnly) {
      ModelPaths.requireReadableModel(base);
      AdapterExport.AdapterReport r;
      try {
        r = AdapterExport.write(model, base, out, verifyMode());
      } catch (IllegalArgumentException e) {
        // Only when the base refused the recipe: say so if it is the int8 form of a float-trained model.
        requireBaseOfTheTrainedForm(model, base);
        throw e;
      }
      stdout.println("Verified: applied to the base, " + r.appliedSummary());
      if (r.ortAdapter() != null) {
        stdout.println("Verified: ORT LoRA adapter on " + AdapterExport.BASE_WITH_INPUTS + ", " + r.ortAdapterSummary());
      }
      stdout.printf(
          "Wrote %s: %s (%s; %,d trained parameters)%n",
          out, String.join(", ", r.files()), String.join(", ", r.methods()), r.parameters());
      stdout.println("Time: " + r.timing().summary());
    } else {
      ModelPaths.requireWritableTarget(out);
      if (opset != null || quantize != null) {
        writeStaged(model, stdout);
        stdout.flush();
        return 0;
      }
      ExportOptions options =
          ExportOptions.defaults().withFp16(fp16).withExternalData(externalData).withIrVersion(irVersion)
              .withKeepUnmerged(keepUnmerged).withVerify(verifyMode());
      ExportReport r = MergedExport.write(model, out, options);
      stdout.println("Folded: " + r.fold().summary());
      for (String f : r.fold().kept()) stdout.println("  kept as nodes: " + f);
      stdout.println("Verified: " + r.verificationSummary());
      if (r.verifiedBy() == ExportOptions.Verify.FULL) {
        for (ExportVerifier.OutputDiff d : r.verification().outputs()) {
          stdout.printf("  %s: max |diff| %.3g%n", d.name(), d.maxAbsDiff());
        }
      }
      stdout.println("Op census change:");
      for (String c : r.censusChange()) stdout.println("  " + c);
      stdout.printf(
          "Wrote %s (IR %d%s%s)%n",
          out,
          r.irVersion(),
          fp16 ? ", " + r.fp16Initializers() + " weights as fp16" : "",
          externalData ? ", external data in " + out.getFileName() + ".data" : "");
      stdout.println("Time: " + r.timing().summary());
    }
    stdout.flush();
    return 0;
  }

  /**
   * The merged export, then further stages on it (another opset, int8): the merge is written to a
   * temporary file beside OUT and verified against TUNED; each stage reads the previous file, and
   * only the last writes OUT, after its own check (ORT outputs for an opset, test accuracy for int8).
   */
  private void writeStaged(Model model, PrintWriter stdout) {
    Path dir = out.toAbsolutePath().getParent();
    List<Path> temporary = new ArrayList<>();
    try {
      Path merged = temporaryFile(dir, ".graft-merged-", temporary);
      ExportReport r =
          MergedExport.write(
              model, merged,
              ExportOptions.defaults().withFp16(fp16).withIrVersion(opset == null ? irVersion : null).withKeepUnmerged(keepUnmerged)
                  .withVerify(verifyMode()));
      stdout.println("Folded: " + r.fold().summary());
      for (String f : r.fold().kept()) stdout.println("  kept as nodes: " + f);
      stdout.println("Verified merge: " + r.verificationSummary());
      Path fp32 = merged;
      if (opset != null) {
        Path target = quantize == null ? out : temporaryFile(dir, ".graft-opset-", temporary);
        OpsetExport.Result c =
            OpsetExport.write(
                model, ModelIO.load(merged), opset, irVersion,
                fp16 ? ExportVerifier.FP16_TOLERANCE : ExportVerifier.FP32_TOLERANCE,
                externalData && quantize == null, target);
        stdout.println("Converted: " + c.conversion().toString().replace("\n", "\n  "));
        stdout.println("Verified: " + c.verification().summary());
        fp32 = target;
        if (quantize == null) {
          stdout.printf(
              "Wrote %s (opset %d, IR %d%s)%n", out, opset, c.irVersion(),
              externalData ? ", external data in " + out.getFileName() + ".data" : "");
          return;
        }
      }
      writeInt8(model, fp32, stdout);
    } finally {
      for (Path p : temporary) {
        try {
          Files.deleteIfExists(p);
        } catch (IOException ignored) {
          // a temporary file left behind is harmless
        }
      }
    }
  }

  private void writeInt8(Model model, Path fp32, PrintWriter stdout) {
    List<TextExample> test = new ArrayList<>();
    for (Path p : DataSources.resolve(data)) test.addAll(TextDatasets.read(p, textColumn, labelColumn));
    Path tok = DataSources.tokenizer(tokenizer, tuned);
    ToDoubleFunction<Path> accuracy =
        file -> EvalCommand.evaluate(file, test, List.of(), tok, maxLength, 64, 0, null).classification().accuracy();
    QuantizedExport.Result q =
        QuantizedExport.write(model, ModelIO.load(fp32), fp32, out, accuracy, maxAccuracyDrop, externalData);
    stdout.println("Quantised: " + q.quantization().summary());
    stdout.printf(
        "Test accuracy on %,d examples: fp32 %.4f, int8 %.4f (drop %.4f, allowed %.4f)%n",
        test.size(), q.fp32Accuracy(), q.int8Accuracy(), q.accuracyDrop(), maxAccuracyDrop);
    stdout.printf("Size: fp32 %,d bytes, int8 %,d bytes (%.2fx smaller)%n", q.fp32Bytes(), q.int8Bytes(), (double) q.fp32Bytes() / q.int8Bytes());
    stdout.printf("max |int8 - tuned| on held-out inputs: %.3g (int8 is approximate; accuracy decides)%n", q.maxAbsDiffToTuned());
    try {
      Map<String, Tensor> feeds = ExportVerifier.heldOutInputs(model, 20240611L);
      TargetRuntime.RunSettings timing = new TargetRuntime.RunSettings(3, 10, 2);
      OrtJavaRuntime ort = new OrtJavaRuntime();
      double f = RuntimeCheck.median(ort.run(fp32, feeds, timing).latenciesMs());
      double i = RuntimeCheck.median(ort.run(out, feeds, timing).latenciesMs());
      stdout.printf(
          "Latency (ORT Java, 2 threads, inputs %s, median of 10): fp32 %.2f ms, int8 %.2f ms%n",
          feeds.values().iterator().next().shape(), f, i);
    } catch (TargetRuntime.Refusal e) {
      stdout.println("Latency not measured: " + e.getMessage());
    }
    stdout.printf("Wrote %s (int8 weights)%n", out);
  }

  private static Path temporaryFile(Path dir, String prefix, List<Path> temporary) {
    try {
      Path p = Files.createTempFile(dir, prefix, ".onnx");
      temporary.add(p);
      return p;
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot write a temporary file in " + dir, e);
    }
  }

  /** --verify as the exporter's mode; a usage error for anything but auto, full, probe, none. */
  private ExportOptions.Verify verifyMode() {
    return switch (verify) {
      case "auto" -> ExportOptions.Verify.AUTO;
      case "full" -> ExportOptions.Verify.FULL;
      case "probe" -> ExportOptions.Verify.PROBE;
      case "none" -> ExportOptions.Verify.NONE;
      default -> throw new ParameterException(
          spec.commandLine(), "--verify takes auto, full, probe or none, got '" + verify + "'.");
    };
  }

  private void checkOptions() {
    ExportOptions.Verify mode = verifyMode();
    if (fp16 && mode == ExportOptions.Verify.PROBE) {
      throw new ParameterException(
          spec.commandLine(),
          "--verify probe checks fp32 merged weights; --fp16 changes them after the fold. Use --verify full (or auto).");
    }
    if (merge && adapterOnly) {
      throw new ParameterException(spec.commandLine(), "--merge and --adapter-only exclude each other; choose one.");
    }
    if (adapterOnly) {
      if (base == null) {
        throw new ParameterException(
            spec.commandLine(),
            "--adapter-only needs --base BASE, the model TUNED was made from (its SHA-256 binds the adapter to it).");
      }
      if (fp16 || externalData || irVersion != null || opset != null || quantize != null || keepUnmerged) {
        throw new ParameterException(
            spec.commandLine(), "--fp16, --external-data, --ir-version, --opset, --quantize and --keep-unmerged apply to merged exports only; drop them or drop --adapter-only.");
      }
    } else if (quantize != null) {
      if (!quantize.equals("int8")) {
        throw new ParameterException(spec.commandLine(), "--quantize takes int8, got '" + quantize + "'.");
      }
      if (fp16) throw new ParameterException(spec.commandLine(), "--quantize and --fp16 exclude each other; choose one.");
      if (data == null || data.isEmpty()) {
        throw new ParameterException(
            spec.commandLine(), "--quantize needs --data TEST: the int8 export is scored on it before it is written.");
      }
    }
    if (quantize == null && data != null) {
      throw new ParameterException(spec.commandLine(), "--data only applies with --quantize; add it or drop --data.");
    }
    if (!adapterOnly && base != null) {
      throw new ParameterException(spec.commandLine(), "--base only applies with --adapter-only; add it or drop --base.");
    }
  }
}
