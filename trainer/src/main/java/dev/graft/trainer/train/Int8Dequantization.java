package dev.graft.trainer.train;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.io.SessionFile;
import dev.graft.ir.tensor.Tensor;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Turns a dynamically int8-quantised model back into float32 linears for training: the form ONNX
 * Runtime's {@code quantize_dynamic} writes (and {@code graft export --quantize int8}), where no
 * module pass finds a linear layer and nothing can be differentiated.
 *
 * <pre>
 *   xq, xs, xz = DynamicQuantizeLinear(x)
 *   y = Mul(Cast&lt;float&gt;(MatMulInteger(xq, Wq, xz, Wz)), Mul(xs, Ws))
 *     =>  y = MatMul(x, W),   W = (Wq - Wz) * Ws          (Ws, Wz: a scalar or one per column)
 *
 *   y = DequantizeLinear(Gather(Eq, ids), Es, Ez)          (a per-tensor scale)
 *     =>  y = Gather(E, ids),  E = DequantizeLinear(Eq, Es, Ez)
 * </pre>
 *
 * W and E hold exactly the values the quantised weights stand for (computed by ONNX Runtime). What
 * changes is that activations are no longer rounded to 8 bits, so the float model computes what the
 * quantised one approximates; it trains like any float model, and {@code graft export --quantize
 * int8} quantises the tuned model again. Linears in other forms stay as they are.
 */
public final class Int8Dequantization {
  /** What was dequantised. */
  public record Report(int matMuls, int weights, int gathers, long quantizedBytes, long floatBytes) {
    public boolean any() {
      return matMuls + gathers > 0;
    }

    public String summary() {
      return String.format(
          "int8 model: %d MatMulInteger linear%s (%d weight%s) and %d quantised embedding Gather%s dequantised to"
              + " float32 for training (%,d -> %,d bytes of weights); the tuned model is float32,"
              + " `graft export --quantize int8` quantises it again",
          matMuls, matMuls == 1 ? "" : "s", weights, weights == 1 ? "" : "s", gathers, gathers == 1 ? "" : "s",
          quantizedBytes, floatBytes);
    }
  }

  private Int8Dequantization() {}

  /** Dequantises {@code m} in place; a model without the quantised forms is left as it was. */
  public static Report apply(Model m) {
    Graph g = m.graph();
    Map<String, Value> floats = new HashMap<>();
    List<Value> touched = new ArrayList<>();
    int matMuls = 0;
    int gathers = 0;
    long quantized = 0;
    long dequantized = 0;
    for (Node mm : List.copyOf(g.nodes())) {
      if (!mm.isIn(g)) continue;
      Optional<Linear> l = linear(mm);
      if (l.isEmpty()) continue;
      Linear lin = l.get();
      String key = lin.wq.name() + "|" + name(lin.wz) + "|" + lin.ws.name();
      Value w = floats.get(key);
      if (w == null) {
        Tensor wf = dequantize(lin.wq, lin.wz, lin.ws, "linear weight " + lin.wq.name());
        String name = g.freshName(base(lin.wq.name()));
        w = g.addInitializer(name, wf.withName(name));
        floats.put(key, w);
        quantized += lin.wq.initializer().get().byteSize();
        dequantized += wf.byteSize();
      }
      GraphBuilder b = GraphBuilder.on(g).before(mm).prefix((mm.name().isEmpty() ? "MatMulInteger" : mm.name()) + "/float");
      Value y = b.op("MatMul", lin.x, w);
      replace(g, lin.out, y);
      touched.add(lin.out); // from the old output up: Mul, Cast, MatMulInteger, their constants
      matMuls++;
    }
    for (Node dq : List.copyOf(g.nodes())) {
      if (!dq.isIn(g) || !dq.is("DequantizeLinear") || !dq.domain().isEmpty()) continue;
      Node gather = dq.input(0).producer().orElse(null);
      if (gather == null || !gather.is("Gather") || gather.attrLong("axis", 0) != 0 || dq.input(0).uses().size() != 1) continue;
      Value eq = gather.input(0);
      if (!constant(eq) || !constant(dq.input(1)) || dq.input(1).initializer().get().numElements() != 1) continue;
      Value ez = dq.inputs().size() > 2 ? dq.input(2) : null;
      if (ez != null && !constant(ez)) continue;
      Tensor ef = dequantize(eq, ez, dq.input(1), "embedding table " + eq.name());
      String name = g.freshName(base(eq.name()));
      Value e = g.addInitializer(name, ef.withName(name));
      GraphBuilder b = GraphBuilder.on(g).before(dq).prefix((gather.name().isEmpty() ? "Gather" : gather.name()) + "/float");
      Value y = b.op("Gather", List.of(e, gather.input(1)), Attr.of("axis", 0L));
      Value old = dq.output();
      replace(g, old, y);
      touched.add(old); // from the old output up: DequantizeLinear, Gather, their constants
      quantized += eq.initializer().get().byteSize();
      dequantized += ef.byteSize();
      gathers++;
    }
    g.removeUnread(touched);
    return new Report(matMuls, floats.size(), gathers, quantized, dequantized);
  }

  /** One quantised linear: y = out, computed from x by Wq (zero point Wz) scaled by Ws. */
  private record Linear(Value x, Value wq, Value wz, Value ws, Value out) {}

  private static Optional<Linear> linear(Node mm) {
    if (!mm.is("MatMulInteger") || !mm.domain().isEmpty() || mm.inputs().size() < 3) return Optional.empty();
    Node dql = mm.input(0).producer().orElse(null);
    if (dql == null || !dql.is("DynamicQuantizeLinear") || dql.output(2) != mm.input(2)) return Optional.empty();
    Value wq = mm.input(1);
    Value wz = mm.inputs().size() > 3 ? mm.input(3) : null;
    if (!constant(wq) || wq.initializer().get().dims().length != 2 || (wz != null && !constant(wz))) return Optional.empty();
    Node cast = mm.output().soleReader().orElse(null);
    if (cast == null || !cast.is("Cast") || cast.attrLong("to", 0) != DataType.FLOAT.code()) return Optional.empty();
    Node mul = cast.output().soleReader().orElse(null);
    if (mul == null || !mul.is("Mul")) return Optional.empty();
    Value scale = mul.input(0) == cast.output() ? mul.input(1) : mul.input(0);
    Node scales = scale.producer().orElse(null);
    if (scales == null || !scales.is("Mul")) return Optional.empty();
    Value xs = dql.output(1);
    Value ws = scales.input(0) == xs ? scales.input(1) : scales.input(1) == xs ? scales.input(0) : null;
    if (ws == null || !constant(ws) || ws.initializer().get().dataType() != DataType.FLOAT) return Optional.empty();
    long n = wq.initializer().get().dims()[1];
    if (!perColumnOrScalar(ws, n) || (wz != null && !perColumnOrScalar(wz, n))) return Optional.empty();
    return Optional.of(new Linear(dql.input(0), wq, wz, ws, mul.output()));
  }

  /** (Wq - Wz) * Ws, by ONNX Runtime; Ws and Wz broadcast along the last axis. */
  private static Tensor dequantize(Value q, Value zeroPoint, Value scale, String what) {
    Tensor wq = q.initializer().get();
    GraphBuilder b = GraphBuilder.create("dequantize");
    Value in = b.input("q", wq.dataType(), wq.shape().dims().toArray());
    Value s = b.input("scale", DataType.FLOAT, scale.initializer().get().shape().dims().toArray());
    Value f = b.op("Cast", List.of(in), Attr.of("to", (long) DataType.FLOAT.code()));
    Map<String, Tensor> feeds = new HashMap<>();
    feeds.put("q", wq);
    feeds.put("scale", scale.initializer().get());
    if (zeroPoint != null) {
      Tensor zp = zeroPoint.initializer().get();
      Value z = b.input("zero_point", zp.dataType(), zp.shape().dims().toArray());
      f = b.op("Sub", f, b.op("Cast", List.of(z), Attr.of("to", (long) DataType.FLOAT.code())));
      feeds.put("zero_point", zp);
    }
    b.output("w", b.typed(b.op("Mul", f, s), DataType.FLOAT, wq.shape().dims().toArray()));
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    try (OrtSession.SessionOptions o = new OrtSession.SessionOptions()) {
      o.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.NO_OPT);
      OrtSession session;
      try (SessionFile file = SessionFile.write(b.model(17))) {
        session = env.createSession(file.path().toString(), o);
      }
      Map<String, OnnxTensor> in2 = new HashMap<>();
      try (session) {
        for (Map.Entry<String, Tensor> e : feeds.entrySet()) in2.put(e.getKey(), OrtTensors.toOrt(env, e.getValue()));
        try (OrtSession.Result r = session.run(in2)) {
          return OrtTensors.toTensor(null, (OnnxTensor) r.get(0));
        }
      } finally {
        in2.values().forEach(OnnxTensor::close);
      }
    } catch (OrtException e) {
      throw new IllegalStateException("ONNX Runtime could not dequantise the " + what + ": " + e.getMessage(), e);
    }
  }

  private static boolean perColumnOrScalar(Value v, long n) {
    long[] d = v.initializer().get().dims();
    return v.initializer().get().numElements() == 1 || (d.length == 1 && d[0] == n);
  }

  private static boolean constant(Value v) {
    return v != null && v.isInitializer() && !v.isGraphInput();
  }

  private static String name(Value v) {
    return v == null ? "" : v.name();
  }

  /** "onnx::MatMul_787_quantized" -> "onnx::MatMul_787" (the float weight's name). */
  private static String base(String quantizedName) {
    return quantizedName.endsWith("_quantized") ? quantizedName.substring(0, quantizedName.length() - "_quantized".length()) : quantizedName + "_float";
  }

  /** {@code old}'s readers read {@code y}, which takes its name. */
  private static void replace(Graph g, Value old, Value y) {
    String name = old.name();
    y.setTypeOf(old);
    old.replaceAllUsesWith(y, true);
    g.rename(old, g.freshName(name + "_int8"));
    g.rename(y, name);
  }
}
