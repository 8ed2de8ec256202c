package dev.graft.export;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableMap;
import dev.graft.ir.tensor.Tensor;
import java.util.Map;

/**
 * How a merged export is written.
 *
 * @param fp16 store float weights as fp16 ({@link Fp16Storage}); the graph still computes in fp32
 * @param externalData put tensors of 1 KiB or more in a data file beside the model ({@code
 *     OUT.data})
 * @param irVersion the IR version to declare, or null to keep the tuned model's
 * @param feeds held-out inputs for verification, or empty to generate them ({@link
 *     ExportVerifier#heldOutInputs})
 * @param tolerance the largest accepted difference, or NaN for the default of the precision
 * @param keepUnmerged keep linear branches (LoRA) over 4-bit {@code MatMulNBits} weights as
 *     nodes instead of refusing the export ({@link DeltaFolding.Quantized#KEEP})
 * @param verify how the export is checked before it is written ({@link Verify})
 */
public record ExportOptions(
    boolean fp16,
    boolean externalData,
    Long irVersion,
    ImmutableMap<String, Tensor> feeds,
    double tolerance,
    boolean keepUnmerged,
    Verify verify) {

  /** How a merged export is checked against the tuned model before anything is written. */
  public enum Verify {
    /**
     * {@link #PROBE} for a model that streams (256 MiB or more of external data) when every
     * merged delta is a linear branch (LoRA and its kin), {@link #FULL} otherwise.
     */
    AUTO,
    /** Both whole models on ORT, every output compared ({@link ExportVerifier}). */
    FULL,
    /** Each merged weight on a random probe, as stored ({@link FoldProbe}); no whole-model run. */
    PROBE,
    /** No check (the user asked for none). */
    NONE
  }

  public ExportOptions {
    checkArgument(irVersion == null || irVersion > 0, "The IR version must be positive, got %s", irVersion);
    checkArgument(Double.isNaN(tolerance) || tolerance >= 0, "The tolerance must be 0 or more, got %s", tolerance);
    checkArgument(verify != null, "The verification mode is null; use Verify.AUTO for the default");
  }

  /** fp32, inline, the tuned model's IR version, generated inputs, the default tolerance. */
  public static ExportOptions defaults() {
    return new ExportOptions(false, false, null, ImmutableMap.of(), Double.NaN, false, Verify.AUTO);
  }

  public ExportOptions withFp16(boolean v) {
    return new ExportOptions(v, externalData, irVersion, feeds, tolerance, keepUnmerged, verify);
  }

  public ExportOptions withExternalData(boolean v) {
    return new ExportOptions(fp16, v, irVersion, feeds, tolerance, keepUnmerged, verify);
  }

  public ExportOptions withIrVersion(Long v) {
    return new ExportOptions(fp16, externalData, v, feeds, tolerance, keepUnmerged, verify);
  }

  public ExportOptions withFeeds(Map<String, Tensor> v) {
    return new ExportOptions(fp16, externalData, irVersion, ImmutableMap.copyOf(v), tolerance, keepUnmerged, verify);
  }

  public ExportOptions withTolerance(double v) {
    return new ExportOptions(fp16, externalData, irVersion, feeds, v, keepUnmerged, verify);
  }

  public ExportOptions withKeepUnmerged(boolean v) {
    return new ExportOptions(fp16, externalData, irVersion, feeds, tolerance, v, verify);
  }

  public ExportOptions withVerify(Verify v) {
    return new ExportOptions(fp16, externalData, irVersion, feeds, tolerance, keepUnmerged, v);
  }

  /** The tolerance in force: the given one, else 1e-4 for fp32 and 2e-2 for fp16 storage. */
  public double effectiveTolerance() {
    if (!Double.isNaN(tolerance)) return tolerance;
    return fp16 ? ExportVerifier.FP16_TOLERANCE : ExportVerifier.FP32_TOLERANCE;
  }
}
