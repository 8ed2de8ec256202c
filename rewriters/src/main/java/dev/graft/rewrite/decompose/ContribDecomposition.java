package dev.graft.rewrite.decompose;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMap;
import com.google.common.collect.ImmutableMultiset;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.rewrite.GraphPass;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.Splice;
import java.util.ArrayList;
import java.util.List;

/**
 * Rewrites the ONNX Runtime contrib ops of GenAI-style decoders into standard ONNX ops, so that
 * autodiff (which has rules for standard ops only) can differentiate the graph. Run it on the
 * training copy only: the deployed graph keeps the fused kernels.
 *
 * <pre>
 *   SimplifiedLayerNormalization(x, w)             =>  w * x / sqrt(mean(x^2) + eps)
 *   SkipSimplifiedLayerNormalization(x, s, w[, b]) =>  t = x + s (+ b); w * t / sqrt(mean(t^2) + eps), t
 *   GroupQueryAttention(q, k, v, past.., cos, sin) =>  heads, rotary, Concat(past), repeat, causal softmax
 *   MatMulNBits(A, B4, scales)                     =>  MatMul(A, dequantise(B4, scales))   B4 stays uint8
 * </pre>
 *
 * Each replacement computes what ORT's kernel computes (checked against ORT in the tests); the
 * replaced node's output names are kept. An op it does not know, or a form of a known op it does
 * not cover (packed QKV, zero points, 8 bits), stays and is reported, so autodiff then names it.
 */
public final class ContribDecomposition implements GraphPass {
  public static final String NAME = "decompose-contrib";

  /** How one op type is rewritten: emits the replacement values of the node's outputs. */
  @FunctionalInterface
  interface Decomposer {
    /** One value per forward output (null where the output is omitted), or a refusal. */
    List<Value> decompose(GraphBuilder b, Model m, Node n);
  }

  /** Thrown by a decomposer that does not cover the node's form; the node then stays. */
  static final class Unsupported extends RuntimeException {
    Unsupported(String why) {
      super(why);
    }
  }

  private static final ImmutableMap<String, Decomposer> BY_OP =
      ImmutableMap.of(
          "SimplifiedLayerNormalization", SimplifiedNorms::simplified,
          "com.microsoft:SkipSimplifiedLayerNormalization", SimplifiedNorms::skipSimplified,
          "com.microsoft:GroupQueryAttention", GroupQueryAttentions::decompose,
          "com.microsoft:MatMulNBits", MatMulNBitsDequant::decompose);

  @Override
  public String name() {
    return NAME;
  }

  /** Whether {@code n} is an op this pass rewrites. */
  public static boolean covers(Node n) {
    return BY_OP.containsKey(key(n));
  }

  private static String key(Node n) {
    return n.domain().isEmpty() ? n.opType() : n.domain() + ":" + n.opType();
  }

  @Override
  public PassResult run(Model model) {
    ImmutableMultiset.Builder<String> changes = ImmutableMultiset.builder();
    ImmutableList.Builder<String> notes = ImmutableList.builder();
    for (Node n : new ArrayList<>(model.graph().nodes())) {
      Decomposer d = BY_OP.get(key(n));
      if (d == null) continue;
      GraphBuilder b = GraphBuilder.on(model.graph()).before(n).prefix("/graft/decompose" + n.name());
      int before = model.graph().nodeCount();
      List<Value> replacement;
      try {
        replacement = d.decompose(b, model, n);
      } catch (Unsupported e) {
        // Take back what the decomposer made before it refused.
        List<Node> made = new ArrayList<>();
        for (Node k : model.graph().nodes()) if (k.name().startsWith("/graft/decompose" + n.name() + "/")) made.add(k);
        for (int i = made.size() - 1; i >= 0; i--) model.graph().removeNode(made.get(i));
        notes.add(n.opType() + " '" + n.name() + "': " + e.getMessage());
        continue;
      }
      replace(model, n, replacement);
      changes.add(NAME + " " + n.opType());
      assert model.graph().nodeCount() >= before;
    }
    return new PassResult(NAME, changes.build(), 0, false, notes.build());
  }

  @Override
  public PassResult dryRun(Model model) {
    ImmutableMultiset.Builder<String> changes = ImmutableMultiset.builder();
    for (Node n : model.graph().nodes()) if (covers(n)) changes.add(NAME + " " + n.opType());
    return new PassResult(NAME, changes.build(), 0, true, ImmutableList.of());
  }

  /** Rewires every output of {@code n} to its replacement, drops {@code n}, keeps the names. */
  private static void replace(Model model, Node n, List<Value> replacement) {
    List<String> names = new ArrayList<>();
    for (int i = 0; i < n.outputs().size(); i++) {
      Value old = n.outputs().get(i);
      Value now = i < replacement.size() ? replacement.get(i) : null;
      names.add(old == null ? null : old.name());
      if (old == null) continue;
      if (now == null) {
        if (old.hasUses() || old.isGraphOutput()) {
          throw new IllegalStateException(n.opType() + " '" + n.name() + "': output " + i + " is read but has no replacement");
        }
        continue;
      }
      old.replaceAllUsesWith(now, true);
    }
    model.graph().removeNode(n);
    for (int i = 0; i < names.size(); i++) {
      Value now = i < replacement.size() ? replacement.get(i) : null;
      if (names.get(i) != null && now != null && now.producer().isPresent()
          && now.isIn(model.graph()) && model.graph().lookup(names.get(i)).isEmpty()) {
        model.graph().rename(now, names.get(i));
      }
    }
  }

  /** ReduceMean over the last axis, keepdims, in the model's opset's form. */
  static Value meanLast(GraphBuilder b, Model m, Value x) {
    if (Splice.opset(m) >= 18) {
      return b.op("ReduceMean", List.of(x, b.int64s(-1)), dev.graft.ir.Attr.of("keepdims", 1L));
    }
    return b.op("ReduceMean", List.of(x), dev.graft.ir.Attr.ints("axes", -1), dev.graft.ir.Attr.of("keepdims", 1L));
  }

  /** gamma * x / sqrt(mean(x^2) + eps). */
  static Value rms(GraphBuilder b, Model m, Value x, Value gamma, float eps) {
    Value variance = meanLast(b, m, b.op("Mul", x, x));
    Value std = b.op("Sqrt", b.op("Add", variance, b.scalar(eps)));
    return b.op("Mul", b.op("Div", x, std), gamma);
  }
}
