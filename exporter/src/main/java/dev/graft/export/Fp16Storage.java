package dev.graft.export;

import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Type;
import dev.graft.ir.Use;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import java.util.List;
import java.util.Map;

/**
 * fp16 storage: float weights are stored as FLOAT16 and cast back to FLOAT where the graph reads
 * them, so the file is about half the size while every operator still computes in fp32.
 *
 * <pre>
 *   MatMul(x, W: float[384, 384])  =>  MatMul(x, Cast(W_fp16: float16[384, 384], to=FLOAT))
 * </pre>
 *
 * Why not an fp16 graph: converting the computation (inputs, outputs, every op's type, LayerNorm
 * and Softmax precision, Erf) needs per-op care and changes results far more than rounding the
 * weights does, and ORT's CPU kernels for many ops have no fp16 version. With Casts the rounding
 * of the weights is the only change (relative 2^-11 at most), ORT folds the Casts at session
 * start, and inference costs what fp32 costs. Only float initializers of at least
 * {@value #MIN_ELEMENTS} elements are converted: scalars and small vectors (epsilons, shapes of
 * the pooling) would gain nothing. The rounding itself runs on ORT (a Cast graph), like all the
 * exporter's tensor maths.
 */
public final class Fp16Storage {
  public static final int MIN_ELEMENTS = 16;

  private Fp16Storage() {}

  /** Converts {@code model} in place; returns how many initializers now are fp16. */
  public static int apply(Model model) {
    Graph g = model.graph();
    GraphBuilder b = GraphBuilder.create("to_fp16");
    Value x = b.input("x", DataType.FLOAT, "n");
    b.output("y", b.op("Cast", List.of(x), Attr.of("to", (long) DataType.FLOAT16.code())));
    b.typed(b.graph().outputs().get(0), DataType.FLOAT16, "n");
    int converted = 0;
    try (OrtSession.SessionOptions o = new OrtSession.SessionOptions();
        OrtSession cast = OrtEval.ENV.createSession(ModelIO.toBytes(b.model(17)), o)) {
      for (Value v : List.copyOf(g.initializers())) {
        Tensor t = v.initializer().orElseThrow();
        if (t.dataType() != DataType.FLOAT || t.numElements() < MIN_ELEMENTS) continue;
        if (v.isGraphInput() || v.isGraphOutput() || !v.hasUses()) continue;
        Tensor flat = DenseTensor.ofRaw("x", DataType.FLOAT, new long[] {t.numElements()}, t.rawData());
        Tensor half = OrtEval.run(cast, Map.of("x", flat)).get("y");
        String name = v.name();
        List<Use> uses = v.uses();
        g.rename(v, g.freshName(name + "_fp16"));
        g.setInitializer(v, DenseTensor.ofRaw(v.name(), DataType.FLOAT16, t.dims(), half.rawData()));
        v.setType(Type.tensor(DataType.FLOAT16, t.shape()));
        Node c =
            new Node("", "Cast", List.of(v), List.of(name), List.of(Attr.of("to", (long) DataType.FLOAT.code())),
                "/graft/export/fp16/" + name);
        if (g.nodes().isEmpty()) g.addNode(c);
        else g.insertBefore(g.nodes().get(0), c);
        c.output().setType(Type.tensor(DataType.FLOAT, t.shape()));
        for (Use u : uses) u.node().setInput(u.index(), c.output());
        converted++;
      }
    } catch (OrtException e) {
      throw new IllegalStateException("ONNX Runtime failed converting weights to fp16: " + e.getMessage(), e);
    }
    return converted;
  }
}
