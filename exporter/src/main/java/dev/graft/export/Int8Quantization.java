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
 * once. Embedding tables read by a Gather on axis 0 are quantised too, one scale per row (as ORT
 * quantises Gather):
 *
 * <pre>
 *   y = Gather(E, ids)   =>   y = Mul(Cast&lt;float&gt;(Gather(Eq, ids)), Gather(Es, ids))   Es [V, 1]
 * </pre>
 *
 * The fp32 tensors are dropped, so the file shrinks about 4x.
 * The quantised graph computes approximately: accuracy is what tells whether it is good enough
 * ({@code graft export --quantize int8 --data TEST --max-accuracy-drop D}).
 */
public final class Int8Quantization {
  /** Symmetric int8 range: ±127 keeps zero exactly representable and the range balanced. */
  private static final float QMAX = 127f;

  /** What was quantised. */
  public record Report(
      int matMuls, int weights, int gathers, long fp32Bytes, long int8Bytes, ImmutableList<String> skipped) {
    public String summary() {
      return String.format(
          "%d MatMul%s on %d weight%s and %d embedding Gather%s quantised to int8 per channel (%,d -> %,d bytes)",
          matMuls, matMuls == 1 ? "" : "s", weights, weights == 1 ? "" : "s", gathers, gathers == 1 ? "" : "s",
          fp32Bytes, int8Bytes);
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
    // One DynamicQuantizeLinear per activation, shared by the MatMuls reading it (query, key and
    // value read the same hidden state), as ORT's quantiser writes it.
    Map<Value, List<Value>> quantizedActivations = new IdentityHashMap<>();
    for (Value w : order) {
      Tensor t = w.initializer().orElseThrow();
      long n = t.dims()[1];
      ImmutableMap<String, Tensor> q = quantize(t, 1);
      Value wq = named(g, w.name() + "_quantized", q.get("W_quantized"));
      Value ws = named(g, w.name() + "_scale", q.get("W_scale"));
      Value wz = named(g, w.name() + "_zero_point", zeros(null, n));
      fp32 += t.byteSize();
      int8 += t.numElements() + 4 * n + n;
      for (Node mm : byWeight.get(w)) {
        rewrite(g, mm, wq, ws, wz, quantizedActivations);
        matMuls++;
      }
      if (!w.hasUses() && !w.isGraphOutput()) g.removeInitializer(w);
    }
    int gathers = 0;
    for (Node n : List.copyOf(g.nodes())) {
      if (!n.is("Gather") || !n.domain().isEmpty() || n.attrLong("axis", 0) != 0) continue;
      Value e = n.input(0);
      Optional<Tensor> t = e.isInitializer() && !e.isGraphInput() ? e.initializer() : Optional.empty();
      if (t.isEmpty() || t.get().dataType() != DataType.FLOAT || t.get().dims().length != 2 || e.uses().size() != 1) continue;
      ImmutableMap<String, Tensor> q = quantize(t.get(), 0);
      long rows = t.get().dims()[0];
      Value eq = named(g, e.name() + "_quantized", q.get("W_quantized"));
      Tensor rowScales = q.get("W_scale");
      Value es = named(g, e.name() + "_scale", DenseTensor.ofRaw(null, DataType.FLOAT, new long[] {rows, 1}, rowScales.rawData()));
      rewriteGather(g, n, eq, es);
      fp32 += t.get().byteSize();
      int8 += t.get().numElements() + 4 * rows;
      if (!e.hasUses() && !e.isGraphOutput()) g.removeInitializer(e);
      gathers++;
    }
    return new Report(matMuls, order.size(), gathers, fp32, int8, ImmutableList.copyOf(skipped));
  }

  /** {@code y = Gather(E, ids)  =>  y = Mul(Cast<float>(Gather(Eq, ids)), Gather(Es, ids))}, Es [V, 1]. */
  private static void rewriteGather(Graph g, Node gather, Value eq, Value es) {
    String base = gather.name().isEmpty() ? "Gather" : gather.name();
    GraphBuilder b = GraphBuilder.on(g).before(gather).prefix(base + "/int8");
    Value ids = gather.input(1);
    Value rows = b.op("Gather", List.of(eq, ids), Attr.of("axis", 0L));
    Value scale = b.op("Gather", List.of(es, ids), Attr.of("axis", 0L));
    Value y = b.op("Mul", b.op("Cast", List.of(rows), Attr.of("to", (long) DataType.FLOAT.code())), scale);
    Value old = gather.output();
    String name = old.name();
    y.setTypeOf(old);
    old.replaceAllUsesWith(y, true);
    g.removeNode(gather);
    g.rename(y, name);
  }

  private static void rewrite(Graph g, Node mm, Value wq, Value ws, Value wz, Map<Value, List<Value>> quantized) {
    String base = mm.name().isEmpty() ? "MatMul" : mm.name();
    Value x = mm.input(0);
    List<Value> xq = quantized.get(x);
    if (xq == null) {
      // Right after x is made (or first in the graph for a graph input), so every reader sees it.
      Node anchor = x.producer().map(p -> g.nodes().get(g.nodes().indexOf(p) + 1)).orElse(g.nodes().get(0));
      xq = GraphBuilder.on(g).before(anchor).prefix(base + "/int8").ops("DynamicQuantizeLinear", 3, List.of(x));
      quantized.put(x, xq);
    }
    GraphBuilder b = GraphBuilder.on(g).before(mm).prefix(base + "/int8");
    Value yi = b.op("MatMulInteger", List.of(xq.get(0), wq, xq.get(2), wz));
    Value yf = b.op("Cast", List.of(yi), Attr.of("to", (long) DataType.FLOAT.code()));
    Value scale = b.op("Mul", xq.get(1), ws);
    Value y = b.op("Mul", yf, scale);
    Value old = mm.output();
    String name = old.name();
    y.setTypeOf(old);
    old.replaceAllUsesWith(y, true);
    g.removeNode(mm);
    g.rename(y, name);
  }

  /**
   * Wq (int8) and Ws (fp32, one per slice along {@code axis}: per column of a [K, N] weight, per row
   * of a [V, D] embedding table), computed by ONNX Runtime.
   */
  private static ImmutableMap<String, Tensor> quantize(Tensor w, long axis) {
    long k = w.dims()[0];
    long n = w.dims()[1];
    long channels = w.dims()[(int) axis];
    GraphBuilder b = GraphBuilder.create("quantize_weight");
    Value in = b.input("W", DataType.FLOAT, k, n);
    Value zp = b.input("zero_point", DataType.INT8, channels);
    Value absMax =
        b.op("ReduceMax", List.of(b.op("Abs", in)), Attr.ints("axes", 1 - axis), Attr.of("keepdims", 0L));
    // An all-zero channel would get scale 0 and divide by it; any positive scale quantises it to 0.
    Value scale = b.op("Max", b.op("Div", absMax, b.scalar(QMAX)), b.scalar(Float.MIN_NORMAL));
    Value q = b.op("QuantizeLinear", List.of(in, scale, zp), Attr.of("axis", axis));
    b.output("W_quantized", b.typed(q, DataType.INT8, k, n));
    b.output("W_scale", b.typed(scale, DataType.FLOAT, channels));
    Model qm = b.model(17);
    return OrtEval.run(qm, Map.of("W", w, "zero_point", zeros("zero_point", channels)));
  }

  private static Value named(Graph g, String hint, Tensor t) {
    String name = g.freshName(hint);
    return g.addInitializer(name, t.withName(name));
  }

  private static DenseTensor zeros(String name, long n) {
    return DenseTensor.ofRaw(name, DataType.INT8, new long[] {n}, ByteBuffer.allocate(Math.toIntExact(n)));
  }
}
