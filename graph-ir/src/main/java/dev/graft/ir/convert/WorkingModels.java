package dev.graft.ir.convert;

import dev.graft.ir.Model;
import dev.graft.ir.io.ModelIO;
import java.nio.file.Path;
import java.util.Optional;

/**
 * The one way rewrite, train and export load a model: {@link ModelIO#load} (lazy external
 * data), then, when the default-domain opset is older than {@link OpsetUpgrade#WORKING_OPSET},
 * {@link OpsetUpgrade#upgrade} to it, so that discovery, passes, folding and autodiff meet one
 * dialect (DESIGN.md decision 8). A model at the working opset or newer is returned as loaded:
 * the upgrade is a no-op there, and nothing is read or copied.
 *
 * <pre>
 *   model.onnx (opset 11..16) ─load─► IR ─upgrade─► IR at opset 17
 *   model.onnx (opset ≥ 17)   ─load─► IR
 * </pre>
 */
public final class WorkingModels {
  private WorkingModels() {}

  /** Loads {@code path} and brings it to the working opset. */
  public static Model load(Path path) {
    Model m = ModelIO.load(path);
    toWorkingOpset(m);
    return m;
  }

  /**
   * Brings {@code m}, built or read in memory, to the working opset in place (as {@link #load} does
   * for a file) and returns it.
   */
  public static Model of(Model m) {
    toWorkingOpset(m);
    return m;
  }

  /**
   * Upgrades {@code m} in place when its default-domain opset is older than the working one;
   * returns what changed, or empty when nothing had to (already there, or no ai.onnx import).
   */
  public static Optional<UpgradeReport> toWorkingOpset(Model m) {
    long opset = m.defaultOpset().orElse(OpsetUpgrade.WORKING_OPSET);
    if (opset >= OpsetUpgrade.WORKING_OPSET) return Optional.empty();
    return Optional.of(OpsetUpgrade.upgrade(m));
  }

  /**
   * Refuses a model older than the working opset, for the code that speaks only its dialect
   * (passes, folding, autodiff): one line naming {@code who}, the model's opset and the two ways
   * to fix it. A model with no ai.onnx import passes (nothing in it has an older form).
   */
  public static void requireWorkingOpset(Model m, String who) {
    long opset = m.defaultOpset().orElse(OpsetUpgrade.WORKING_OPSET);
    if (opset >= OpsetUpgrade.WORKING_OPSET) return;
    throw new IllegalArgumentException(String.format(
        "%s: the model is at opset %d, older than Graft's working opset %d. Load it with"
            + " WorkingModels.load, which upgrades it once (graft rewrite, train and export do), or"
            + " upgrade the file first: graft convert IN OUT --opset %d.",
        who, opset, OpsetUpgrade.WORKING_OPSET, OpsetUpgrade.WORKING_OPSET));
  }
}
