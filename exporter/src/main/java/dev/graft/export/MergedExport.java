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
 * Verification runs the export as it will be written, serialised to bytes (tensor layout, inline
 * or external, does not change what ORT computes).
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
    Path dir = out.toAbsolutePath().getParent();
    Model export = ModelIO.fromBytes(ModelIO.toBytes(tuned), dir);
    FoldReport fold = DeltaFolding.fold(export);
    Model reference = CodaExport.sparsify(tuned, export, dir);
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
    ModelIO.save(export, out, options.externalData() ? SaveOptions.external() : SaveOptions.inline());
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
    Model export = ModelIO.fromBytes(ModelIO.toBytes(tuned), null);
    DeltaFolding.fold(export);
    return export;
  }
}
