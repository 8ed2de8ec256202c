package dev.graft.export;

import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtLoraAdapter;
import ai.onnxruntime.OrtSession;
import com.google.common.collect.ImmutableMap;
import dev.graft.ir.Model;
import dev.graft.ir.tensor.Tensor;
import java.nio.file.Path;
import java.util.Map;

/**
 * Serving several adapters from one ONNX Runtime session: the session holds {@code
 * base_with_lora_inputs.onnx} ({@link AdapterExport}), and each run activates one {@code
 * OrtLoraAdapter} through {@code RunOptions.addActiveLoraAdapter}, which feeds that adapter's
 * parameters as the graph inputs of the same names.
 */
public final class MultiLora {
  private MultiLora() {}

  /**
   * Session options for the serving graph: ORT warns for every overridable initializer that it
   * "will not be treated as constant", which is the point here, so only errors are logged.
   */
  public static OrtSession.SessionOptions sessionOptions() throws OrtException {
    OrtSession.SessionOptions o = new OrtSession.SessionOptions();
    o.setSessionLogLevel(ai.onnxruntime.OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR);
    return o;
  }

  private static OrtSession open(Path model, OrtSession.SessionOptions o, long externalBytes) throws OrtException {
    if (externalBytes >= dev.graft.ir.io.SessionFile.LARGE_WEIGHTS) OrtEval.largeWeightOptions(o);
    return OrtEval.ENV.createSession(model.toString(), o);
  }

  /** Runs {@code session} on {@code feeds} with {@code adapter} active (none when null). */
  public static ImmutableMap<String, Tensor> run(
      OrtSession session, OrtLoraAdapter adapter, Map<String, Tensor> feeds) throws OrtException {
    try (OrtSession.RunOptions ro = new OrtSession.RunOptions()) {
      if (adapter != null) ro.addActiveLoraAdapter(adapter);
      return OrtEval.run(session, feeds, ro);
    }
  }

  /** The multi-adapter graph with {@code adapterFile} active must reproduce {@code tuned}. */
  static ExportVerifier.Verification verify(
      Model tuned, Path baseWithInputs, Path adapterFile, Map<String, Tensor> feeds) {
    ImmutableMap<String, Tensor> expected = OrtEval.run(tuned, feeds, "the tuned model");
    return verify(expected, baseWithInputs, adapterFile, feeds, OrtEval.externalBytes(tuned));
  }

  /**
   * As {@link #verify(Model, Path, Path, Map)}, against the tuned model's outputs on {@code feeds}
   * already computed; {@code externalBytes} of file weights decide ORT's large-model options.
   */
  static ExportVerifier.Verification verify(
      Map<String, Tensor> expected, Path baseWithInputs, Path adapterFile, Map<String, Tensor> feeds, long externalBytes) {
    try (OrtSession.SessionOptions o = sessionOptions();
        OrtSession s = open(baseWithInputs, o, externalBytes);
        OrtLoraAdapter a = OrtLoraAdapter.create(adapterFile.toString())) {
      return ExportVerifier.verify(expected, run(s, a, feeds), ExportVerifier.FP32_TOLERANCE);
    } catch (OrtException e) {
      throw new IllegalStateException(
          "ONNX Runtime could not serve " + adapterFile + " on " + baseWithInputs + ": " + e.getMessage(), e);
    }
  }

  /**
   * Opens {@code baseWithInputs} as a serving session would (ORT maps its weights, so this reads
   * none of them; no run): proof that ORT loads the file as written, its linked data included.
   */
  static void requireLoads(Path baseWithInputs, long externalBytes) {
    try (OrtSession.SessionOptions o = sessionOptions();
        OrtSession s = open(baseWithInputs, o, externalBytes)) {
      // opened
    } catch (OrtException e) {
      throw new IllegalStateException("ONNX Runtime could not open " + baseWithInputs + ": " + e.getMessage(), e);
    }
  }
}
