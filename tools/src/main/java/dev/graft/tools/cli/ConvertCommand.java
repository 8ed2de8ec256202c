package dev.graft.tools.cli;

import dev.graft.ir.io.AtomicFiles;
import dev.graft.export.FeedForm;
import dev.graft.ir.Model;
import dev.graft.ir.convert.OpsetDowngrade;
import dev.graft.ir.convert.OpsetUpgrade;
import dev.graft.ir.convert.UpgradeReport;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.io.SaveOptions;
import dev.graft.tools.check.StaticShapes;
import dev.graft.tools.check.TargetRuntime;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code graft convert}: load a model and write it back, changing only how it is laid out. */
@Command(
    name = "convert",
    mixinStandardHelpOptions = true,
    versionProvider = GraftVersion.class,
    description = {
      "Re-serialise an ONNX model losslessly: everything the file holds (metadata, functions,"
          + " subgraphs, doc strings, unknown fields) is written back.",
      "By default each tensor stays where it is: inline tensors stay in OUT, external data is"
          + " copied into one data file next to OUT. The output is written to a temporary file"
          + " and moved into place, so a failed run leaves OUT as it was."
    },
    footerHeading = "%nExamples:%n",
    footer = {
      "  graft convert model.onnx copy.onnx",
      "  graft convert model.onnx split.onnx --external-data",
      "      tensors of 1024 bytes or more go to split.onnx.data",
      "  graft convert model.onnx split.onnx --external-data --threshold 0",
      "      every tensor goes to split.onnx.data",
      "  graft convert split.onnx single.onnx --inline",
      "      one self-contained file",
      "  graft convert model.onnx model17.onnx --opset 17",
      "      upgrade an opset-11 export to the working opset that Graft's passes speak",
      "  graft convert model17.onnx model13.onnx --opset 13",
      "      write it back for a runtime that loads opset 13 at most"
    })
final class ConvertCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Parameters(index = "0", paramLabel = "IN", description = "The .onnx file to read.")
  Path in;

  @Parameters(
      index = "1",
      paramLabel = "OUT",
      description = "Where to write; its folder must exist. May be IN itself.")
  Path out;

  @Option(
      names = "--external-data",
      description = "Move tensors of at least --threshold bytes to OUT's data file (OUT + '.data').")
  boolean externalData;

  @Option(
      names = "--threshold",
      paramLabel = "BYTES",
      description = "With --external-data: the smallest tensor, in bytes, moved out of OUT."
          + " Default: ${DEFAULT-VALUE}.")
  long threshold = SaveOptions.DEFAULT_THRESHOLD;

  @Option(
      names = "--inline",
      description = "Write every tensor into OUT, reading external data in. Models over"
          + " protobuf's 2 GiB limit are still written with external data.")
  boolean inline;

  @Option(
      names = "--opset",
      paramLabel = "N",
      description = "Upgrade the default-domain opset to N (" + OpsetUpgrade.WORKING_OPSET + " to "
          + OpsetUpgrade.NEWEST_OPSET + ", the newest this ONNX Runtime runs), rewriting each node"
          + " whose operator changed in between. Models from opset " + OpsetUpgrade.OLDEST_SOURCE_OPSET
          + " up. Below the model's opset (down to " + OpsetDowngrade.OLDEST_TARGET + "), each node whose"
          + " operator changed is rewritten back and an op with no older form is refused by name.")
  Long opset;

  @Option(
      names = "--feed-form",
      description = "Drop the default of every graph input that has one (an initializer listed among"
          + " the inputs, like the LoRA inputs of base_with_lora_inputs.onnx): it must then be fed."
          + " ONNX Runtime for Node.js needs this form to serve an adapter by feeding its tensors,"
          + " since it drops feeds for inputs that have a default (docs/deployment.md). E.g."
          + " graft convert adapter/base_with_lora_inputs.onnx base_feed.onnx --feed-form")
  boolean feedForm;

  @Option(
      names = "--static-shape",
      paramLabel = "NAME=SIZE,...",
      description = "Fix every symbolic dim of the inputs (e.g. batch_size=1,sequence_length=128) and"
          + " fold the shape computations that then become constant (Shape, Gather, Slice, ... chains)"
          + " with ONNX Runtime's constant folding: the static graph OpenCV's DNN importer needs"
          + " (docs/deployment.md).")
  String staticShape;

  @Override
  public Integer call() {
    SaveOptions options = saveOptions();
    ModelPaths.requireReadableModel(in);
    ModelPaths.requireWritableTarget(out);
    Model model = ModelIO.load(in);
    PrintWriter stdout = spec.commandLine().getOut();
    if (opset != null) {
      long from = model.defaultOpset().orElse(opset);
      UpgradeReport report =
          opset < from ? OpsetDowngrade.downgrade(model, opset) : OpsetUpgrade.upgrade(model, opset);
      stdout.println(report);
    }
    if (feedForm) {
      List<String> changed = FeedForm.apply(model, null);
      if (changed.isEmpty()) {
        throw new UserError(in + " has no graph input with a default value; --feed-form has nothing to do.");
      }
      stdout.println("Feed form: " + changed.size() + " input(s) lost their default and must be fed: " + changed);
    }
    if (staticShape != null) model = staticShapes(model, StaticShapes.parse(staticShape), stdout);
    ModelIO.save(model, out, options);
    stdout.println("Wrote " + out + " (" + describe(options) + ")");
    stdout.flush();
    return 0;
  }

  /** The model with its input dims fixed and its shape computations folded by ORT. */
  private static Model staticShapes(Model model, Map<String, Long> sizes, PrintWriter stdout) {
    StaticShapes.fixDims(model, sizes);
    long before = model.graph().nodes().size();
    Path dir = null;
    try {
      dir = Files.createTempDirectory("graft-static-shape");
      Path fixed = dir.resolve("fixed.onnx");
      Path folded = dir.resolve("folded.onnx");
      ModelIO.save(model, fixed, SaveOptions.inline());
      try {
        StaticShapes.fold(fixed, folded);
      } catch (TargetRuntime.Refusal e) {
        throw new UserError(e.getMessage());
      }
      Model out = ModelIO.load(folded);
      long shapes = out.graph().nodes().stream().filter(n -> n.opType().equals("Shape")).count();
      stdout.printf(
          "Static shapes: inputs fixed to %s; ONNX Runtime folded %d nodes to %d (%d Shape left)%n",
          sizes, before, out.graph().nodes().size(), shapes);
      return out;
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot write a temporary copy for folding: " + e.getMessage(), e);
    } finally {
      AtomicFiles.deleteTreeQuietly(dir);
    }
  }

  private SaveOptions saveOptions() {
    if (externalData && inline) {
      throw new ParameterException(
          spec.commandLine(), "--external-data and --inline exclude each other; choose one.");
    }
    boolean thresholdGiven = spec.commandLine().getParseResult().hasMatchedOption("--threshold");
    if (thresholdGiven && !externalData) {
      throw new ParameterException(
          spec.commandLine(), "--threshold only applies with --external-data; add it.");
    }
    if (threshold < 0) {
      throw new ParameterException(
          spec.commandLine(), "--threshold must be 0 or more bytes, got " + threshold + ".");
    }
    if (externalData) return SaveOptions.external(threshold);
    if (inline) return SaveOptions.inline();
    return SaveOptions.keep();
  }

  private static String describe(SaveOptions o) {
    return switch (o.layout()) {
      case KEEP -> "tensors kept where they were";
      case INLINE -> "all tensors inline";
      case EXTERNAL -> "tensors of " + o.threshold() + " bytes or more in external data";
    };
  }
}
