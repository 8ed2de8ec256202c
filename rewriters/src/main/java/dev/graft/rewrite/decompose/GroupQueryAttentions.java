package dev.graft.rewrite.decompose;

import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.rewrite.Splice;
import dev.graft.rewrite.decompose.ContribDecomposition.Unsupported;
import java.util.Arrays;
import java.util.List;

/**
 * {@code com.microsoft} GroupQueryAttention in standard ops (unpacked Q/K/V, half-split rotary,
 * no sliding window, no softcap):
 *
 * <pre>
 *   q, k, v  = Transpose(Reshape(q|k|v, [0, 0, heads, -1]), [0, 2, 1, 3])
 *   q, k     = t * cos + Concat(-t2, t1) * sin      (do_rotary; cos = Gather(cos_cache, past + i), twice)
 *   k, v     = Concat(past_key|past_value, k|v)     -> present_key, present_value
 *   k, v     = Reshape(Expand(Unsqueeze(k|v, 2), [1, 1, H/Hkv, 1, 1]), [b, H, t, d])
 *   out      = Reshape(Transpose(Softmax(q k^T * scale + mask) v), [0, 0, -1])
 *   mask     = 0 where key j <= past + i and j <= seqlens_k[b], else float's lowest
 * </pre>
 *
 * Query i sits at position past + i, as in ORT's kernel for unpadded prompts and for decoding.
 */
final class GroupQueryAttentions {
  private static final float LOWEST = -3.4028235e38f;

  private GroupQueryAttentions() {}

  static List<Value> decompose(GraphBuilder b, Model m, Node n) {
    long heads = n.attrLong("num_heads", 0);
    long kvHeads = n.attrLong("kv_num_heads", 0);
    if (heads <= 0 || kvHeads <= 0 || heads % kvHeads != 0) throw new Unsupported("num_heads " + heads + " / kv_num_heads " + kvHeads);
    if (n.input(1) == null || n.input(2) == null) throw new Unsupported("packed QKV (one query input) is not decomposed yet");
    if (n.attrLong("rotary_interleaved", 0) != 0) throw new Unsupported("interleaved rotary is not decomposed yet");
    if (n.attrLong("local_window_size", -1) != -1) throw new Unsupported("sliding-window attention is not decomposed yet");
    if (n.attrFloat("softcap", 0f) != 0f) throw new Unsupported("softcap is not decomposed yet");
    float scale = n.attrFloat("scale", 0f);
    if (scale == 0f) {
      long d = headDim(n);
      if (d <= 0) throw new Unsupported("no scale attribute and no head size to derive it from");
      scale = (float) (1 / Math.sqrt(d));
    }
    boolean rotary = n.attrLong("do_rotary", 0) != 0;
    Value pastKey = n.input(3);
    Value pastValue = n.input(4);

    Value q = heads(b, n.input(0), heads);
    Value k = heads(b, n.input(1), kvHeads);
    Value v = heads(b, n.input(2), kvHeads);
    Value s = dim(b, n.input(0), 1);
    Value past = pastKey == null ? b.scalar(0L) : dim(b, pastKey, 2);
    Value positions = b.op("Range", past, b.op("Add", past, s), b.scalar(1L));
    if (rotary) {
      if (n.input(7) == null || n.input(8) == null) throw new Unsupported("do_rotary without cos/sin caches");
      Value cos = halves(b, b.op("Gather", n.input(7), positions));
      Value sin = halves(b, b.op("Gather", n.input(8), positions));
      q = rotate(b, m, q, cos, sin);
      k = rotate(b, m, k, cos, sin);
    }
    if (pastKey != null) k = b.op("Concat", List.of(pastKey, k), Attr.of("axis", 2L));
    if (pastValue != null) v = b.op("Concat", List.of(pastValue, v), Attr.of("axis", 2L));
    Value presentKey = k;
    Value presentValue = v;
    Value kr = repeat(b, k, heads, kvHeads);
    Value vr = repeat(b, v, heads, kvHeads);

    Value scores = b.op("Mul", b.op("MatMul", q, b.op("Transpose", List.of(kr), Attr.ints("perm", 0, 1, 3, 2))), b.scalar(scale));
    Value total = dim(b, k, 2);
    Value keys = b.op("Range", b.scalar(0L), total, b.scalar(1L));
    Value causal = b.op("LessOrEqual", b.op("Unsqueeze", keys, b.int64s(0)), b.op("Unsqueeze", positions, b.int64s(1)));
    Value allowed = causal;
    if (n.input(5) != null) {
      Value lengths = b.op("Cast", List.of(n.input(5)), Attr.of("to", (long) DataType.INT64.code()));
      Value inRow = b.op("LessOrEqual", b.op("Unsqueeze", keys, b.int64s(0)), b.op("Unsqueeze", lengths, b.int64s(1)));
      allowed = b.op("And", causal, b.op("Unsqueeze", inRow, b.int64s(1, 2)));
    }
    Value bias = b.op("Where", allowed, b.scalar(0f), b.scalar(LOWEST));
    Value probs = b.op("Softmax", List.of(b.op("Add", scores, bias)), Attr.of("axis", -1L));
    Value ctx = b.op("Transpose", List.of(b.op("MatMul", probs, vr)), Attr.ints("perm", 0, 2, 1, 3));
    Value out = b.op("Reshape", ctx, b.int64s(0, 0, -1));
    return Arrays.asList(out, presentKey, presentValue);
  }

  /** [b, s, n*d] -> [b, n, s, d]. */
  private static Value heads(GraphBuilder b, Value x, long n) {
    return b.op("Transpose", List.of(b.op("Reshape", x, b.int64s(0, 0, n, -1))), Attr.ints("perm", 0, 2, 1, 3));
  }

  /** A scalar int64: the size of {@code x} along {@code axis}. */
  private static Value dim(GraphBuilder b, Value x, long axis) {
    return b.op("Gather", List.of(b.op("Shape", x), b.scalar(axis)), Attr.of("axis", 0L));
  }

  /** [s, d/2] -> [s, d]: the half-split convention repeats each table. */
  private static Value halves(GraphBuilder b, Value t) {
    return b.op("Concat", List.of(t, t), Attr.of("axis", -1L));
  }

  /** t * cos + Concat(-t2, t1) * sin, with t1, t2 the halves of the last axis. */
  private static Value rotate(GraphBuilder b, Model m, Value t, Value cos, Value sin) {
    List<Value> parts =
        Splice.opset(m) >= 18
            ? b.ops("Split", 2, List.of(t), Attr.of("axis", -1L), Attr.of("num_outputs", 2L))
            : b.ops("Split", 2, List.of(t), Attr.of("axis", -1L));
    Value rotated = b.op("Concat", List.of(b.op("Neg", parts.get(1)), parts.get(0)), Attr.of("axis", -1L));
    return b.op("Add", b.op("Mul", t, cos), b.op("Mul", rotated, sin));
  }

  /** [b, Hkv, t, d] -> [b, H, t, d], each key/value head repeated H/Hkv times in place. */
  private static Value repeat(GraphBuilder b, Value kv, long heads, long kvHeads) {
    long rep = heads / kvHeads;
    if (rep == 1) return kv;
    Value expanded = b.op("Expand", b.op("Unsqueeze", kv, b.int64s(2)), b.int64s(1, 1, rep, 1, 1));
    Value shape = b.op("Shape", kv);
    Value target =
        b.op("Concat",
            List.of(b.op("Slice", shape, b.int64s(0), b.int64s(1)), b.int64s(heads), b.op("Slice", shape, b.int64s(2), b.int64s(4))),
            Attr.of("axis", 0L));
    return b.op("Reshape", expanded, target);
  }

  /** The head size from the cos cache ([positions, d/2]) or the past key's declared shape. */
  private static long headDim(Node n) {
    if (n.input(7) != null) {
      var t = dev.graft.ir.Constants.valueOf(n.input(7));
      if (t.isPresent() && t.get().dims().length == 2) return 2 * t.get().dims()[1];
    }
    if (n.input(3) != null && n.input(3).shape().isPresent()) {
      var s = n.input(3).shape().get();
      if (s.rank() == 4 && s.dim(3).isFixed()) return s.dim(3).value();
    }
    return -1;
  }
}
