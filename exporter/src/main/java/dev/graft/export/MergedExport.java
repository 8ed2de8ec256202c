package dev.graft.export;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableMap;
import dev.graft.ir.Model;
import dev.graft.ir.analysis.OpCensus;
import dev.graft.ir.analysis.Verifier;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.io.SaveOptions;
import dev.graft.ir.tensor.Tensor;
import java.nio.file.Path;
import java.util.function.Consumer;
import java.util.function.UnaryOperator;

/**
 * The merged export: copy the tuned model, fold its deltas ({@link DeltaFolding}), optionally
 * store weights as fp16 and change the declared IR version, verify the result against the tuned
 * model on ONNX Runtime ({@link ExportVerifier}), and only then write it.
 *
 * <pre>
 *   tuned ─copy─► fold ─► (fp16) ─► (IR version) ─► verify vs tuned ─► save (inline | external)
 *                                                      │ fails
 *                                                      └─► VerificationFailedException, nothing written
 * </pre>
 *
 * Verification runs the export as it will be written, opened by ORT from a file (tensor layout,
 * inline or external, does not change what ORT computes). A tuned model with 256 MiB or more of
 * external data streams: the copy shares its tensors, each merged weight goes to a spill file as
 * soon as it is computed ({@link FoldSpill}), ORT reads both models' weights from their files,
 * and the save copies unchanged weights file to file into {@code OUT.data}; the heap holds one
 * weight at a time.
 */
public final class MergedExport {
  private MergedExport() {}

  /** Folds, verifies and writes {@code tuned} to {@code out}; the tuned model is not changed. */
  public static ExportReport write(Model tuned, Path out, ExportOptions options) {
    return write(tuned, out, options, m -> {});
  }

  /**
   * As {@link #write(Model, Path, ExportOptions)}, with {@code beforeVerify} applied to the folded
   * copy just before verification: the test hook that proves a broken export is not written.
   */
  static ExportReport write(Model tuned, Path out, ExportOptions options, Consumer<Model> beforeVerify) {
    checkArgument(out != null, "MergedExport.write needs an output path, got null");
    boolean stream = streams(tuned);
    try (FoldSpill spill = stream ? new FoldSpill(out) : null) {
      return write(tuned, out, options, beforeVerify, spill);
    }
  }

  /**
   * Whether the export streams: a tuned model with at least {@link #STREAM_FROM} bytes of
   * external data folds into a spill file ({@link FoldSpill}), is verified from files and is
   * written with external data (a copy file to file for unchanged weights).
   */
  static boolean streams(Model tuned) {
    return OrtEval.externalBytes(tuned) >= STREAM_FROM;
  }

  /** External data from which an export streams: 256 MiB. */
  static final long STREAM_FROM = 256L << 20;

  private static ExportReport write(
      Model tuned, Path out, ExportOptions options, Consumer<Model> beforeVerify, FoldSpill spill) {
    Model export = tuned.copy();
    DeltaFolding.Quantized quantized = options.keepUnmerged() ? DeltaFolding.Quantized.KEEP : DeltaFolding.Quantized.REFUSE;
    FoldReport fold = DeltaFolding.fold(export, spill == null ? UnaryOperator.identity() : spill, quantized);
    Model reference = CodaExport.sparsify(tuned, export);
    int fp16 = options.fp16() ? Fp16Storage.apply(export) : 0;
    if (options.irVersion() != null) {
      IrVersions.check(export, options.irVersion());
      export.setIrVersion(options.irVersion());
    }
    Verifier.verify(export);
    beforeVerify.accept(export);
    ImmutableMap<String, Tensor> feeds =
        options.feeds().isEmpty() ? ExportVerifier.heldOutInputs(tuned, 20240611L) : options.feeds();
    ExportVerifier.Verification v =
        ExportVerifier.verify(reference, export, feeds, options.effectiveTolerance());
    boolean external = options.externalData() || spill != null;
    ModelIO.save(export, out, external ? SaveOptions.external() : SaveOptions.inline());
    return new ExportReport(
        out,
        fold,
        v,
        OpCensus.of(tuned.graph()),
        OpCensus.of(export.graph()),
        fp16,
        export.irVersion());
  }

  /** Folds a copy of {@code tuned} and returns it, unverified and unwritten (for benchmarks). */
  public static Model folded(Model tuned) {
    Model export = tuned.copy();
    DeltaFolding.fold(export);
    return export;
  }
}
