package dev.graft.export;

import com.google.common.collect.ImmutableMap;
import dev.graft.ir.Model;
import dev.graft.ir.analysis.Verifier;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.io.SaveOptions;
import dev.graft.ir.tensor.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.ToDoubleFunction;

/**
 * The int8 export: a verified fp32 merged export, quantised ({@link Int8Quantization}), scored on
 * the task's test data next to the fp32 one, and written only when it loses no more accuracy than
 * the user allows.
 *
 * <pre>
 *   merged fp32 (file) ─► quantise ─► temporary int8 file ─► accuracy(fp32), accuracy(int8)
 *                                                              │ drop ≤ tolerance: write OUT
 *                                                              └ drop > tolerance: refused, nothing written
 * </pre>
 *
 * Accuracy is the caller's: a function from a model file to its test accuracy (the CLI passes
 * {@code graft eval}'s evaluation), so the exporter does not read datasets.
 */
public final class QuantizedExport {
  /**
   * What the quantisation did and what it cost: accuracy of both, the largest output difference to
   * the tuned model on held-out inputs (informational: int8 is approximate by design), sizes.
   */
  public record Result(
      Int8Quantization.Report quantization,
      double fp32Accuracy,
      double int8Accuracy,
      double maxAbsDiffToTuned,
      long fp32Bytes,
      long int8Bytes) {
    public double accuracyDrop() {
      return fp32Accuracy - int8Accuracy;
    }
  }

  /** The int8 model lost more accuracy than allowed; nothing was written. */
  public static final class AccuracyDropException extends IllegalArgumentException {
    public AccuracyDropException(String message) {
      super(message);
    }
  }

  private QuantizedExport() {}

  /**
   * Quantises {@code merged} (read from, and equal to, {@code fp32File}; changed in place), scores
   * both with {@code accuracy}, and writes {@code out} when the drop is at most {@code maxDrop}.
   */
  public static Result write(
      Model tuned,
      Model merged,
      Path fp32File,
      Path out,
      ToDoubleFunction<Path> accuracy,
      double maxDrop,
      boolean externalData) {
    if (!(maxDrop >= 0)) throw new IllegalArgumentException("--max-accuracy-drop must be 0 or more, got " + maxDrop);
    Int8Quantization.Report q = Int8Quantization.apply(merged);
    if (q.matMuls() == 0) {
      throw new IllegalArgumentException(
          "Nothing to quantise: the export has no MatMul with a 2-D fp32 initializer as its weight.");
    }
    Verifier.verify(merged);
    Path dir = out.toAbsolutePath().getParent();
    Path tmp = null;
    try {
      tmp = Files.createTempFile(dir, ".graft-int8-", ".onnx");
      ModelIO.save(merged, tmp, SaveOptions.inline());
      ImmutableMap<String, Tensor> feeds = ExportVerifier.heldOutInputs(tuned, 20240611L);
      double diff = ExportVerifier.compare(tuned, merged, feeds, Double.MAX_VALUE).maxAbsDiff();
      double fp32Acc = accuracy.applyAsDouble(fp32File);
      double int8Acc = accuracy.applyAsDouble(tmp);
      if (fp32Acc - int8Acc > maxDrop) {
        throw new AccuracyDropException(
            String.format(
                "The int8 export scores %.4f on the test data, %.4f below fp32's %.4f, more than"
                    + " --max-accuracy-drop %.4f allows. Nothing was written. Raise the tolerance, or"
                    + " export without --quantize.",
                int8Acc, fp32Acc - int8Acc, fp32Acc, maxDrop));
      }
      ModelIO.save(merged, out, externalData ? SaveOptions.external() : SaveOptions.inline());
      return new Result(q, fp32Acc, int8Acc, diff, Files.size(fp32File), Files.size(tmp));
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot write the int8 export beside " + out, e);
    } finally {
      if (tmp != null) {
        try {
          Files.deleteIfExists(tmp);
        } catch (IOException ignored) {
          // a temporary file left behind is harmless
        }
      }
    }
  }
}
