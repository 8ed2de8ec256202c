package dev.graft.rewrite.decompose;

import dev.graft.ir.Attr;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.rewrite.decompose.ContribDecomposition.Unsupported;
import java.util.List;

/**
 * {@code com.microsoft} MatMulNBits (4 bits, symmetric: no zero points, so the zero point is 8) as
 * a MatMul with weights dequantised inside the graph on every run, QLoRA's idea in ONNX: the
 * packed uint8 weights stay initializers at 4 bits, the float weights exist only while the step
 * runs, and the input gradient flows through the MatMul (the weights are frozen and get none).
 *
 * <pre>
 *   f  = CastLike(B, scales)                                B: uint8 [N, blocks, blob]
 *   hi = Floor(f / 16); lo = f - 16 hi                      the even element sits in the low nibble
 *   q  = Reshape(Concat(lo[..., None], hi[..., None], -1), [N, blocks, block])
 *   W  = Transpose(Slice(Reshape((q - 8) * scales[N, blocks, 1], [N, -1]), :K))   [K, N]
 *   y  = MatMul(A, W) (+ bias)
 * </pre>
 */
final class MatMulNBitsDequant {
  private MatMulNBitsDequant() {}

  static List<Value> decompose(GraphBuilder b, Model m, Node n) {
    long bits = n.attrLong("bits", 4);
    long k = n.attrLong("K", -1);
    long outs = n.attrLong("N", -1);
    long block = n.attrLong("block_size", -1);
    if (bits != 4) throw new Unsupported(bits + "-bit weights are not decomposed yet (4 bits are)");
    if (k <= 0 || outs <= 0 || block <= 0) throw new Unsupported("K, N and block_size must be set");
    if (n.input(3) != null) throw new Unsupported("zero points (asymmetric quantisation) are not decomposed yet");
    if (n.input(4) != null) throw new Unsupported("g_idx (act-order) is not decomposed yet");
    long blocks = (k + block - 1) / block;
    Value scales = n.input(2);
    Value f = b.op("CastLike", n.input(1), scales);
    Value sixteen = b.op("CastLike", b.scalar(16f), scales);
    Value hi = b.op("Floor", b.op("Div", f, sixteen));
    Value lo = b.op("Sub", f, b.op("Mul", hi, sixteen));
    Value pairs = b.op("Concat", List.of(b.op("Unsqueeze", lo, b.int64s(-1)), b.op("Unsqueeze", hi, b.int64s(-1))), Attr.of("axis", -1L));
    Value q = b.op("Reshape", pairs, b.int64s(outs, blocks, block));
    Value centred = b.op("Sub", q, b.op("CastLike", b.scalar(8f), scales));
    Value w = b.op("Mul", centred, b.op("Reshape", scales, b.int64s(outs, blocks, 1)));
    Value rows = b.op("Reshape", w, b.int64s(outs, blocks * block));
    if (blocks * block != k) rows = b.op("Slice", rows, b.int64s(0), b.int64s(k), b.int64s(1));
    Value weight = b.op("Transpose", List.of(rows), Attr.ints("perm", 1, 0));
    Value y = b.op("MatMul", n.input(0), weight);
    if (n.input(5) != null) y = b.op("Add", y, n.input(5));
    return List.of(y);
  }
}
