package dev.graft.tools.maven;

import dev.graft.export.AdapterExport;
import dev.graft.export.ExportOptions;
import dev.graft.export.ExportReport;
import dev.graft.export.ExportVerifier;
import dev.graft.export.MergedExport;
import dev.graft.ir.Model;
import dev.graft.ir.io.ModelIO;
import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import org.apache.maven.plugin.MojoExecutionException;
import org.apache.maven.plugin.logging.Log;
import org.apache.maven.plugins.annotations.LifecyclePhase;
import org.apache.maven.plugins.annotations.Mojo;
import org.apache.maven.plugins.annotations.Parameter;

/**
 * {@code graft:export}: turns a tuned model into a deployable one, as {@code graft export} does.
 *
 * <pre>
 *   merge (default)   tuned.onnx ─► fold LoRA / LayerNorm-affine deltas into the weights ─► verify ─► output.onnx
 *   adapterOnly       tuned.onnx + base ─► adapter.safetensors, adapter_config.json (+ ORT adapter) ─► verify ─► output/
 * </pre>
 *
 * Either way the export is run on ONNX Runtime beside the tuned model on held-out inputs before
 * anything is written, and the largest output difference is logged; a difference past the
 * tolerance (1e-4 in fp32, 2e-2 with fp16 weights) fails the build and writes nothing.
 */
@Mojo(name = "export", defaultPhase = LifecyclePhase.PROCESS_RESOURCES, requiresProject = false, threadSafe = true)
public class ExportMojo extends GraftMojo {
  static final String GOAL = "graft:export";

  /** The tuned model: the output of {@code graft:rewrite} or of training. */
  @Parameter(property = "graft.tuned", required = true)
  File tuned;

  /** The merged {@code .onnx} to write; with {@code adapterOnly}, a new or empty folder. */
  @Parameter(property = "graft.output", required = true)
  File output;

  /** Fold mergeable deltas into the frozen weights and write one model. */
  @Parameter(property = "graft.merge", defaultValue = "true")
  boolean merge = true;

  /** Write only the trained parameters and their config (needs {@code base}); overrides merge. */
  @Parameter(property = "graft.adapterOnly", defaultValue = "false")
  boolean adapterOnly;

  /** With {@code adapterOnly}: the base model the tuned one was made from (its SHA-256 binds the adapter). */
  @Parameter(property = "graft.base")
  File base;

  /** Store float weights as fp16 (each read through a Cast; the graph still computes in fp32). */
  @Parameter(property = "graft.fp16", defaultValue = "false")
  boolean fp16;

  /** Put tensors of 1 KiB or more in {@code OUTPUT.data} beside the merged model. */
  @Parameter(property = "graft.externalData", defaultValue = "false")
  boolean externalData;

  /** The IR version to declare in the merged model; unset keeps the tuned model's. */
  @Parameter(property = "graft.irVersion")
  Long irVersion;

  @Override
  String goal() {
    return GOAL;
  }

  @Override
  void run(Log log) throws MojoExecutionException {
    checkOptions();
    Path in = PluginPaths.requireReadableFile(GOAL, "tuned", tuned, "the tuned model");
    Model model = PluginPaths.loadModel(GOAL, in);
    if (adapterOnly) {
      writeAdapter(log, in, model);
    } else {
      writeMerged(log, in, model);
    }
  }

  private void writeMerged(Log log, Path in, Model model) throws MojoExecutionException {
    Path out = PluginPaths.requireWritableFile(GOAL, "output", output);
    ExportOptions options =
        ExportOptions.defaults().withFp16(fp16).withExternalData(externalData).withIrVersion(irVersion);
    ExportReport r;
    try {
      r = MergedExport.write(model, out, options);
    } catch (RuntimeException e) {
      throw GoalFailures.wrap(GOAL, "cannot export '" + in + "' merged to '" + out + "'", e);
    }
    log.info(GOAL + " folded: " + r.fold().summary());
    for (String k : r.fold().kept()) log.info("  kept as nodes: " + k);
    logVerification(log, "merged model vs tuned model", r.verification());
    for (String c : r.censusChange()) log.info("  op census: " + c);
    log.info(
        String.format(
            "%s wrote %s (IR %d%s%s; %s)",
            GOAL,
            out,
            r.irVersion(),
            fp16 ? ", " + r.fp16Initializers() + " weights as fp16" : "",
            externalData ? ", external data in " + out.getFileName() + ".data" : "",
            ModelParameters.of(ModelIO.load(out)).summary()));
  }

  private void writeAdapter(Log log, Path in, Model model) throws MojoExecutionException {
    Path basePath = PluginPaths.requireReadableFile(GOAL, "base", base, "the base model");
    Path out = output.toPath().toAbsolutePath();
    if (Files.isRegularFile(out)) {
      throw new MojoExecutionException(
          GOAL + ": with adapterOnly, 'output' must be a folder, but '" + out + "' is a file."
              + " Give a new or empty folder, e.g. '" + out.resolveSibling("adapter") + "'.");
    }
    PluginPaths.createParent(GOAL, "output", out);
    AdapterExport.AdapterReport r;
    try {
      r = AdapterExport.write(model, basePath, out);
    } catch (RuntimeException e) {
      throw GoalFailures.wrap(GOAL, "cannot export the adapter of '" + in + "' to '" + out + "'", e);
    }
    logVerification(log, "adapter applied to the base vs tuned model", r.applied());
    if (r.ortAdapter() != null) {
      logVerification(log, "ONNX Runtime LoRA adapter on " + AdapterExport.BASE_WITH_INPUTS, r.ortAdapter());
    }
    log.info(
        String.format(
            "%s wrote %s: %s (%s; %,d trained parameters)",
            GOAL, out, String.join(", ", r.files()), String.join(", ", r.methods()), r.parameters()));
  }

  private static void logVerification(Log log, String what, ExportVerifier.Verification v) {
    log.info(String.format("%s verified %s: max difference %.3g (tolerance %.0e)", GOAL, what, v.maxAbsDiff(), v.tolerance()));
    for (ExportVerifier.OutputDiff d : v.outputs()) {
      log.info(String.format("  %s: max |diff| %.3g", d.name(), d.maxAbsDiff()));
    }
  }

  private void checkOptions() throws MojoExecutionException {
    if (!merge && !adapterOnly) {
      throw new MojoExecutionException(
          GOAL + ": nothing to export: merge is false and adapterOnly is false. Set <merge>true</merge> for a"
              + " merged model or <adapterOnly>true</adapterOnly> (with <base>) for the adapter alone.");
    }
    if (adapterOnly) {
      if (base == null) {
        throw new MojoExecutionException(
            GOAL + ": adapterOnly needs <base>, the model the tuned one was made from (its SHA-256 binds"
                + " the adapter to it). Add <base>path/to/base.onnx</base>.");
      }
      if (fp16 || externalData || irVersion != null) {
        throw new MojoExecutionException(
            GOAL + ": fp16, externalData and irVersion apply to merged exports only; remove them or set"
                + " <adapterOnly>false</adapterOnly>.");
      }
    } else if (base != null) {
      throw new MojoExecutionException(
          GOAL + ": <base> only applies with <adapterOnly>true</adapterOnly>; add that or remove <base>.");
    }
  }
}
