package dev.graft.export;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableMap;
import dev.graft.ir.Model;
import dev.graft.ir.analysis.Verifier;
import dev.graft.ir.convert.OpsetDowngrade;
import dev.graft.ir.convert.OpsetUpgrade;
import dev.graft.ir.convert.UpgradeReport;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.io.SaveOptions;
import dev.graft.ir.tensor.Tensor;
import java.nio.file.Path;

/**
 * A merged export rewritten for another default-domain opset (older, for runtimes that do not
 * load the newer one, or newer), and optionally declared at an older IR version; verified against
 * the tuned model on ONNX Runtime before it is written, like every export.
 *
 * <pre>
 *   merged (opset 17) ─► OpsetDowngrade to N ─► (IR version) ─► verify vs tuned ─► save
 *                          │ an op with no older form               │ off by more than the tolerance
 *                          └─► refused, naming op and node          └─► nothing written
 * </pre>
 */
public final class OpsetExport {
  /** What was converted and how close the result is to the tuned model. */
  public record Result(UpgradeReport conversion, ExportVerifier.Verification verification, long irVersion) {}

  private OpsetExport() {}

  /**
   * Converts {@code merged} (changed in place) to {@code opset}, sets {@code irVersion} when not
   * null, verifies against {@code tuned} within {@code tolerance}, and writes {@code out}.
   */
  public static Result write(
      Model tuned, Model merged, long opset, Long irVersion, double tolerance, boolean externalData, Path out) {
    long from = merged.defaultOpset().orElseThrow(() -> new IllegalArgumentException("The export imports no ai.onnx opset"));
    UpgradeReport conversion =
        opset < from ? OpsetDowngrade.downgrade(merged, opset)
            : opset > from ? OpsetUpgrade.upgrade(merged, opset)
            : new UpgradeReport(from, from, com.google.common.collect.ImmutableList.of());
    if (irVersion != null) {
      IrVersions.check(merged, irVersion);
      merged.setIrVersion(irVersion);
    }
    Verifier.verify(merged);
    checkArgument(tolerance >= 0, "The tolerance must be 0 or more, got %s", tolerance);
    ImmutableMap<String, Tensor> feeds = ExportVerifier.heldOutInputs(tuned, 20240611L);
    ExportVerifier.Verification v = ExportVerifier.verify(tuned, merged, feeds, tolerance);
    ModelIO.save(merged, out, externalData ? SaveOptions.external() : SaveOptions.inline());
    return new Result(conversion, v, merged.irVersion());
  }
}
