package dev.graft.tools.check;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import java.nio.file.Path;

/**
 * A fixed-shape model with its shape computations folded away, for engines whose importers need
 * a static graph (OpenCV's DNN). ONNX Runtime does the folding: a session at the basic
 * optimization level (constant folding and redundant-node elimination, standard ONNX ops only)
 * writes the graph it optimized ({@code optimized_model_filepath}).
 *
 * <pre>
 *   input_ids [2, 16] ─► Shape ─► Gather(1) ─► Unsqueeze ─► Slice(position_ids, 0, ·, axis 1) ─► Gather(pos table)
 *   =>  constant position ids [1, 16] ───────────────────────────────────────────────────────► Gather(pos table)
 * </pre>
 *
 * With every input dim fixed, {@code Shape} of an input is a constant, so ORT's constant folding
 * computes the whole chain (Shape, Gather, Unsqueeze, Concat, Slice, Expand, ... of the mask and
 * the position ids) into initializers. Without it, OpenCV 4.9's importer refuses BERT-family
 * exports: first at the {@code Shape} of a dynamic input, and with fixed dims at the {@code Slice}
 * of the position-id buffer ("Axes should be less than 'dim'": it mis-reads the constant's rank).
 */
final class StaticShapes {
  private StaticShapes() {}

  /** Writes {@code in} (fixed input shapes) to {@code out} with its constant subgraphs folded by ORT. */
  static void fold(Path in, Path out) throws TargetRuntime.Refusal {
    try (OrtSession.SessionOptions o = new OrtSession.SessionOptions()) {
      o.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.BASIC_OPT);
      o.setOptimizedModelFilePath(out.toString());
      try (OrtSession s = OrtEnvironment.getEnvironment().createSession(in.toString(), o)) {
        // Opening the session optimizes the graph and writes it to out.
      }
    } catch (OrtException e) {
      throw new TargetRuntime.Refusal(
          "load", null, "ONNX Runtime could not fold the fixed-shape copy's shape computations: " + e.getMessage());
    }
  }
}
