package dev.graft.export;

import static com.google.common.base.Preconditions.checkArgument;

import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.graft.ir.DataType;
import dev.graft.ir.Model;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.io.ModelIO;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;

/**
 * Which IR version an export may declare. Too low and the file claims a format older than the
 * operators it uses (ONNX's version table: opset 11 needs IR 6, opset 17 needs IR 8, opset 21
 * needs IR 10); too high and the ONNX Runtime in use refuses to load it. IR 10 and below load in
 * every ORT since 1.16. The upper bound is not a table but a probe: a one-node model declaring
 * the version is handed to the ORT on the classpath, which says whether it loads it.
 */
public final class IrVersions {
  private static final ConcurrentMap<Long, Boolean> LOADS = new ConcurrentHashMap<>();

  private IrVersions() {}

  /** The lowest IR version that may carry the default-domain {@code opset} (ONNX's table). */
  public static long minimumFor(long opset) {
    if (opset <= 8) return 3;
    if (opset == 9) return 4;
    if (opset == 10) return 5;
    if (opset == 11) return 6;
    if (opset <= 14) return 7;
    if (opset <= 18) return 8;
    if (opset <= 20) return 9;
    if (opset <= 22) return 10;
    return 11;
  }

  /** Whether the ONNX Runtime on the classpath loads a model of IR version {@code ir}. */
  public static boolean ortLoads(long ir) {
    return LOADS.computeIfAbsent(ir, IrVersions::probe);
  }

  /** The newest IR version the ONNX Runtime on the classpath loads. */
  public static long newestOrtLoads() {
    long v = 10;
    while (ortLoads(v + 1) && v < 64) v++;
    return v;
  }

  /** Checks that {@code model} may be written as IR {@code ir}; the message says what to pick. */
  public static void check(Model model, long ir) {
    long opset = model.defaultOpset().orElse(1);
    long min = minimumFor(opset);
    checkArgument(
        ir >= min,
        "IR version %s is too old for opset %s, which needs IR %s or newer. Pick --ir-version %s"
            + " to %s.",
        ir,
        opset,
        min,
        min,
        Math.max(min, 10));
    if (!ortLoads(ir)) {
      throw new IllegalArgumentException(
          String.format(
              "IR version %d is newer than the ONNX Runtime in use (%s) loads; it loads up to IR %d."
                  + " Pick --ir-version %d to %d (IR 10 and below load in every ORT since 1.16).",
              ir, OrtEval.ENV.getVersion(), newestOrtLoads(), min, newestOrtLoads()));
    }
  }

  private static boolean probe(long ir) {
    if (ir < 3) return false;
    GraphBuilder b = GraphBuilder.create("ir_probe");
    b.output("y", b.op("Identity", b.input("x", DataType.FLOAT, 1L)));
    b.typed(b.graph().outputs().get(0), DataType.FLOAT, 1L);
    Model m = b.model(ir >= 6 ? 11 : 7);
    m.setIrVersion(ir);
    try (OrtSession.SessionOptions o = new OrtSession.SessionOptions();
        OrtSession s = OrtEval.ENV.createSession(ModelIO.toBytes(m), o)) {
      return true;
    } catch (OrtException e) {
      return false;
    }
  }
}
