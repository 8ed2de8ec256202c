package dev.graft.export;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMap;
import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Dynamic int8 quantisation of the linear weights of a merged export, in the form ONNX Runtime's
 * own {@code quantize_dynamic} writes (the QOperator form with MatMulInteger): weights int8,
 * symmetric, one scale per output channel; activations quantised to uint8 at run time, per
 * tensor.
 *
 * <pre>
 *   y = MatMul(x, W)        W fp32 [K, N]
 *     =>  xq, xs, xz = DynamicQuantizeLinear(x)
 *         y = Mul(Cast&lt;float&gt;(MatMulInteger(xq, Wq, xz, Wz)), Mul(xs, Ws))
 *         Wq int8 [K, N] = round(W / Ws),  Ws [N] = max|W[:, n]| / 127,  Wz int8 [N] = 0
 * </pre>
 *
 * The per-channel scales and the quantised weights are computed by ONNX Runtime (a small graph of
 * Abs, ReduceMax, Div and QuantizeLinear per weight), not by Java loops. Every MatMul whose second
 * input is a 2-D fp32 initializer is quantised; a weight shared by several MatMuls is quantised
 * once. The fp32 weights are dropped, so the file shrinks about 4x where linear weights dominate.
 * The quantised graph computes approximately: accuracy is what tells whether it is good enough
 * ({@code graft export --quantize int8 --data TEST --max-accuracy-drop D}).
 */
public final class Int8Quantization {
  /** Symmetric int8 range: ±127 keeps zero exactly representable and the range balanced. */
  private static final float QMAX = 127f;

  /** What was quantised. */
  public record Report(int matMuls, int weights, long fp32Bytes, long int8Bytes, ImmutableList<String> skipped) {
    public String summary() {
      return String.format(
          "%d MatMul%s on %d weight%s quantised to int8 per channel (%,d -> %,d bytes of weights)",
          matMuls, matMuls == 1 ? "" : "s", weights, weights == 1 ? "" : "s", fp32Bytes, int8Bytes);
    }
  }

  private Int8Quantization() {}

  /** Quantises {@code m} in place. */
  public static Report apply(Model m) {
    long opset = m.defaultOpset().orElse(0);
    checkArgument(
        opset >= 13,
        "int8 quantisation writes per-channel QuantizeLinear scales, which need opset 13; the export is at opset %s."
            + " Quantise at opset 13 or newer.",
        opset);
    Graph g = m.graph();
    Map<Value, List<Node>> byWeight = new IdentityHashMap<>();
    List<Value> order = new ArrayList<>();
    List<String> skipped = new ArrayList<>();
    for (Node n : g.nodes()) {
      if (!n.is("MatMul") || !n.domain().isEmpty()) continue;
      Value w = n.input(1);
      Optional<Tensor> t = w.isInitializer() && !w.isGraphInput() ? w.initializer() : Optional.empty();
      if (t.isEmpty() || t.get().dataType() != DataType.FLOAT || t.get().dims().length != 2) {
        skipped.add(n.displayName() + " (its weight is not a 2-D fp32 initializer)");
        continue;
      }
      if (!byWeight.containsKey(w)) order.add(w);
      byWeight.computeIfAbsent(w, k -> new ArrayList<>()).add(n);
    }
    long fp32 = 0;
    long int8 = 0;
    int matMuls = 0;
    for (Value w : order) {
      Tensor t = w.initializer().orElseThrow();
      long n = t.dims()[1];
      ImmutableMap<String, Tensor> q = quantize(t);
      Value wq = named(g, w.name() + "_quantized", q.get("W_quantized"));
      Value ws = named(g, w.name() + "_scale", q.get("W_scale"));
      Value wz = named(g, w.name() + "_zero_point", zeros(null, n));
      fp32 += t.byteSize();
      int8 += t.numElements() + 4 * n + n;
      for (Node mm : byWeight.get(w)) {
        rewrite(g, mm, wq, ws, wz);
        matMuls++;
      }
      if (!w.hasUses() && !w.isGraphOutput()) g.removeInitializer(w);
    }
    return new Report(matMuls, order.size(), fp32, int8, ImmutableList.copyOf(skipped));
  }

  private static void rewrite(Graph g, Node mm, Value wq, Value ws, Value wz) {
    String base = mm.name().isEmpty() ? "MatMul" : mm.name();
    GraphBuilder b = GraphBuilder.on(g).before(mm).prefix(base + "/int8");
    List<Value> xq = b.ops("DynamicQuantizeLinear", 3, List.of(mm.input(0)));
    Value yi = b.op("MatMulInteger", List.of(xq.get(0), wq, xq.get(2), wz));
    Value yf = b.op("Cast", List.of(yi), Attr.of("to", (long) DataType.FLOAT.code()));
    Value scale = b.op("Mul", xq.get(1), ws);
    Value y = b.op("Mul", yf, scale);
    Value old = mm.output();
    String name = old.name();
    y.setType(old.type());
    old.replaceAllUsesWith(y, true);
    g.removeNode(mm);
    g.rename(y, name);
  }

  /** Wq (int8) and Ws (fp32, one per column) of a [K, N] weight, computed by ONNX Runtime. */
  private static ImmutableMap<String, Tensor> quantize(Tensor w) {
    long k = w.dims()[0];
    long n = w.dims()[1];
    GraphBuilder b = GraphBuilder.create("quantize_weight");
    Value in = b.input("W", DataType.FLOAT, k, n);
    Value zp = b.input("zero_point", DataType.INT8, n);
    Value absMax = b.op("ReduceMax", List.of(b.op("Abs", in)), Attr.ints("axes", 0), Attr.of("keepdims", 0L));
    // An all-zero column would get scale 0 and divide by it; any positive scale quantises it to 0.
    Value scale = b.op("Max", b.op("Div", absMax, b.scalar(QMAX)), b.scalar(Float.MIN_NORMAL));
    Value q = b.op("QuantizeLinear", List.of(in, scale, zp), Attr.of("axis", 1L));
    b.output("W_quantized", b.typed(q, DataType.INT8, k, n));
    b.output("W_scale", b.typed(scale, DataType.FLOAT, n));
    Model qm = b.model(17);
    return OrtEval.run(qm, Map.of("W", w, "zero_point", zeros("zero_point", n)));
  }

  private static Value named(Graph g, String hint, Tensor t) {
    String name = g.freshName(hint);
    return g.addInitializer(name, t.withName(name));
  }

  private static DenseTensor zeros(String name, long n) {
    return DenseTensor.ofRaw(name, DataType.INT8, new long[] {n}, ByteBuffer.allocate(Math.toIntExact(n)));
  }
}
