package dev.graft.export;

import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import com.google.common.collect.ImmutableMap;
import dev.graft.ir.Model;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.Tensor;
import java.nio.ByteBuffer;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The ORT sessions of one fold, one per distinct fold graph. A fold graph takes its weights as
 * graph inputs, not initializers, and names its values by position, so its serialised form is
 * the same for every weight of one shape and branch form, and one session serves them all:
 *
 * <pre>
 *   W [in, out] ─────────────────────┐
 *   A [in, r] ─── MatMul ─── Add ─── merged       session opened once per (shapes, form);
 *   B [r, out] ─ Mul ─┘                           W, A, B, s fed per weight (W mapped, no copy)
 *   s [] ────────┘
 * </pre>
 *
 * A session per weight would open, plan and fault in a fresh memory arena for every weight; a
 * reused session's arena keeps the output buffer of the previous weight of that shape. The
 * sessions run without graph optimisations (see {@link OrtEval#runUnoptimized}); close the
 * cache when the fold is done.
 */
final class FoldSessions implements AutoCloseable {
  private record Open(OrtSession.SessionOptions options, OrtSession session) {}

  private final Map<ByteBuffer, Open> open = new LinkedHashMap<>();

  /**
   * Runs {@code graph} (initializers only for its small structural constants) on {@code feeds},
   * through the session already open for an identical graph, else a new one; {@code what} names
   * it in errors.
   */
  ImmutableMap<String, Tensor> run(Model graph, Map<String, Tensor> feeds, String what) {
    try {
      return OrtEval.run(session(graph), feeds);
    } catch (OrtException e) {
      throw new IllegalStateException("ONNX Runtime failed on " + what + ": " + e.getMessage(), e);
    }
  }

  /**
   * As {@link #run}, with the graph's output {@code output} written by ORT straight into {@code
   * into} (a direct buffer of its exact size: a mapped region of the export's data file); the
   * other outputs are returned.
   */
  ImmutableMap<String, Tensor> runInto(
      Model graph, Map<String, Tensor> feeds, String output, Tensor shape, ByteBuffer into, String what) {
    try {
      return OrtEval.runInto(session(graph), feeds, output, shape, into);
    } catch (OrtException e) {
      throw new IllegalStateException("ONNX Runtime failed on " + what + ": " + e.getMessage(), e);
    }
  }

  private OrtSession session(Model graph) throws OrtException {
    byte[] bytes = ModelIO.toBytes(graph);
    Open s = open.get(ByteBuffer.wrap(bytes));
    if (s == null) {
      OrtSession.SessionOptions o = new OrtSession.SessionOptions();
      try {
        o.setIntraOpNumThreads(2);
        o.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.NO_OPT);
        s = new Open(o, OrtEval.ENV.createSession(bytes, o));
      } catch (OrtException | RuntimeException e) {
        o.close();
        throw e;
      }
      open.put(ByteBuffer.wrap(bytes), s);
    }
    return s.session();
  }

  /** How many sessions were opened. */
  int size() {
    return open.size();
  }

  @Override
  public void close() {
    RuntimeException failure = null;
    for (Open s : open.values()) {
      try {
        s.session().close();
      } catch (OrtException e) {
        if (failure == null) failure = new IllegalStateException("Cannot close a fold session: " + e.getMessage(), e);
      } finally {
        s.options().close();
      }
    }
    open.clear();
    if (failure != null) throw failure;
  }
}
