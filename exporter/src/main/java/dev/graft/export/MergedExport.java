package dev.graft.export;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableMap;
import dev.graft.ir.Model;
import dev.graft.ir.analysis.OpCensus;
import dev.graft.ir.analysis.Verifier;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.io.SaveOptions;
import dev.graft.ir.io.StagedSave;
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
 *   tuned ─copy─► fold (─► probe each weight) ─► (fp16) ─► (IR version) ─► verify vs tuned ─► save
 *                        │ fails                                            │ fails
 *                        └──────────────────────────────────────────────────┴─► VerificationFailedException,
 *                                                                                nothing written
 * </pre>
 *
 * Verification ({@link ExportOptions.Verify}) runs the export as it will be written, opened by ORT
 * from a file (tensor layout, inline or external, does not change what ORT computes), or probes
 * each merged weight ({@link FoldProbe}): the default for a streaming export whose merged deltas
 * are all linear branches. A tuned model with 256 MiB or more of external data streams: the copy
 * shares its tensors; ORT computes each merged weight (and its probe, in the same run) into a
 * reused buffer that a writer thread writes to the export's own data file, past the page cache
 * ({@link StagedSave}), while ORT computes the next; the same thread copies the unchanged large
 * weights file to file meanwhile; the commit appends what is left and moves the data file into
 * place. Each byte of {@code OUT.data} is written once and no weight passes through the heap.
 * (With {@code --fp16} the merged fp32 weights go to a staged save that is never committed,
 * since fp16 storage replaces them.) The report times the three phases: fold, verify, write.
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
    return write(tuned, out, options, beforeVerify, streams(tuned));
  }

  /** As above, streaming or not as {@code stream} says (tests stream small models). */
  static ExportReport write(
      Model tuned, Path out, ExportOptions options, Consumer<Model> beforeVerify, boolean stream) {
    checkArgument(out != null, "MergedExport.write needs an output path, got null");
    if (!stream) return write(tuned, out, options, beforeVerify, null, null);
    if (options.fp16()) {
      // fp16 storage replaces every merged weight after the fold: stage them in a save that is
      // never committed, so its file is deleted after the export and OUT.data holds no fp32
      // copies nobody reads.
      try (StagedSave spill = StagedSave.begin(out, SaveOptions.external())) {
        return write(tuned, out, options, beforeVerify, DeltaFolding.MergedStore.into(spill), null);
      }
    }
    try (StagedSave staged = StagedSave.begin(out, SaveOptions.external())) {
      return write(tuned, out, options, beforeVerify, DeltaFolding.MergedStore.into(staged), staged);
    }
  }

  /**
   * Whether the export streams: a tuned model with at least {@link #STREAM_FROM} bytes of
   * external data folds each merged weight straight into the export's data file ({@link
   * StagedSave}), is verified from files and is written with external data (unchanged weights
   * copied file to file after the merged ones).
   */
  static boolean streams(Model tuned) {
    return OrtEval.externalBytes(tuned) >= STREAM_FROM;
  }

  /** External data from which an export streams: 256 MiB. */
  static final long STREAM_FROM = 256L << 20;

  private static ExportReport write(
      Model tuned,
      Path out,
      ExportOptions options,
      Consumer<Model> beforeVerify,
      UnaryOperator<Tensor> store,
      StagedSave staged) {
    long t0 = System.nanoTime();
    Model export = tuned.copy();
    DeltaFolding.Quantized quantized =
        options.keepUnmerged() ? DeltaFolding.Quantized.KEEP : DeltaFolding.Quantized.REFUSE;
    ExportOptions.Verify asked = options.verify();
    FoldProbe probe =
        asked == ExportOptions.Verify.PROBE || (asked == ExportOptions.Verify.AUTO && store != null && !options.fp16())
            ? new FoldProbe(options.effectiveTolerance(), PROBE_SEED)
            : null;
    FoldReport fold =
        DeltaFolding.fold(export, store == null ? UnaryOperator.identity() : store, quantized, probe);
    Model reference = CodaExport.sparsify(tuned, export);
    int fp16 = options.fp16() ? Fp16Storage.apply(export) : 0;
    if (options.irVersion() != null) {
      IrVersions.check(export, options.irVersion());
      export.setIrVersion(options.irVersion());
    }
    Verifier.verify(export);
    long t1 = System.nanoTime();
    beforeVerify.accept(export);
    // The probe covers merged linear weights as stored; anything else the export changed (other
    // folds, CoDA's sparse form, fp16 storage) needs the whole models.
    boolean probedAll = probe != null && probe.count() == fold.folded().size() && reference == tuned && fp16 == 0;
    if (asked == ExportOptions.Verify.PROBE && !probedAll) {
      throw new IllegalArgumentException(
          "--verify probe checks merged linear weights (LoRA and its kin) only, but this export also "
              + (fp16 > 0 ? "stores weights as fp16" : "folds " + unprobed(fold, probe) + " or changes the graph's form")
              + ": use --verify full (or auto).");
    }
    ExportOptions.Verify used =
        asked == ExportOptions.Verify.NONE
            ? ExportOptions.Verify.NONE
            : asked == ExportOptions.Verify.FULL || !probedAll ? ExportOptions.Verify.FULL : ExportOptions.Verify.PROBE;
    ExportVerifier.Verification v;
    if (used == ExportOptions.Verify.FULL) {
      ImmutableMap<String, Tensor> feeds =
          options.feeds().isEmpty() ? ExportVerifier.verificationInputs(tuned, 20240611L) : options.feeds();
      v = ExportVerifier.verify(reference, export, feeds, options.effectiveTolerance());
    } else if (used == ExportOptions.Verify.PROBE) {
      v = probe.result();
    } else {
      v = new ExportVerifier.Verification(com.google.common.collect.ImmutableList.of(), options.effectiveTolerance());
    }
    long t2 = System.nanoTime();
    if (staged != null) {
      staged.commit(export);
    } else {
      boolean external = options.externalData() || store != null;
      ModelIO.save(export, out, external ? SaveOptions.external() : SaveOptions.inline());
    }
    long t3 = System.nanoTime();
    return new ExportReport(
        out,
        fold,
        v,
        OpCensus.of(tuned.graph()),
        OpCensus.of(export.graph()),
        fp16,
        export.irVersion(),
        used,
        new ExportReport.Timing((t1 - t0) / 1e9, (t2 - t1) / 1e9, (t3 - t2) / 1e9));
  }

  /** The seed of the probe rows ({@link FoldProbe}): the same probe for every export. */
  static final long PROBE_SEED = 20240611L;

  /** The folds the probe did not check, e.g. {@code "layernorm-affine layer.0.ffn.norm, ..."}. */
  private static String unprobed(FoldReport fold, FoldProbe probe) {
    java.util.Set<String> probed = probe == null ? java.util.Set.of() : probe.modules();
    java.util.List<String> rest = fold.folded().stream().filter(f -> !probed.contains(f)).toList();
    return rest.isEmpty()
        ? "nothing else"
        : String.join(", ", rest.subList(0, Math.min(3, rest.size())))
            + (rest.size() > 3 ? " and " + (rest.size() - 3) + " more" : "");
  }

  /** Folds a copy of {@code tuned} and returns it, unverified and unwritten (for benchmarks). */
  public static Model folded(Model tuned) {
    Model export = tuned.copy();
    DeltaFolding.fold(export);
    return export;
  }
}
