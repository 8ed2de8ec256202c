package dev.graft.export;

import static com.google.common.base.Preconditions.checkState;

import dev.graft.ir.Graph;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.GraftTags;
import dev.graft.rewrite.peft.ConvLoraPass;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The fold rule of {@link ConvLoraPass}: the low-rank pair of convolutions becomes part of the
 * frozen Conv's weight.
 *
 * <pre>
 *   Add(Conv(x, W, b), Mul(Conv(Conv(x, A[r, i, kh, kw]), B[o, r, 1, 1]), s))
 *     =>  Conv(x, W + s · Reshape(MatMul(Reshape(B, [o, r]), Reshape(A, [r, i·kh·kw])), W's shape), b)
 * </pre>
 *
 * The arithmetic runs on ONNX Runtime ({@link OrtEval}). A weight held in a Constant node keeps
 * that form (its value attribute is replaced), so the merged graph has the base's op census.
 */
final class ConvLoraFold {
  private ConvLoraFold() {}

  /** Folds the Conv-LoRA branch that {@code merge} (the method's merge Add) closes. */
  static void fold(Graph g, Node merge, Set<Value> touched, int[] removed) {
    String method = ConvLoraPass.METHOD;
    String module = GraftTags.module(merge).orElse("");
    String where = "Conv-LoRA module '" + module + "'";
    checkState(merge.is("Add"), "%s: the merge node '%s' is %s, expected Add", where, merge.displayName(), merge.opType());
    Node scale = producer(merge.input(1), "Mul", "scale", where);
    int sIndex = scale.input(0).producer().isPresent() ? 1 : 0;
    Node convB = producer(scale.input(1 - sIndex), "Conv", "B", where);
    Node convA = producer(convB.input(0), "Conv", "A", where);
    for (Node n : List.of(scale, convB, convA)) {
      checkState(n.output().uses().size() == 1,
          "%s: '%s' has %s readers; the branch must feed only the merge Add. Export with --adapter-only to keep it.",
          where, n.displayName(), n.output().uses().size());
    }
    Value original = GraftTags.origin(merge.input(0));
    Node conv = original.producer().orElse(null);
    checkState(conv != null && conv.is("Conv") && conv.input(0) == convA.input(0),
        "%s wraps '%s', which is not a Conv reading the branch's input '%s'; the delta folds only into that Conv",
        where, original.name(), convA.input(0).name());
    Tensor w = DeltaFolding.constant(conv.input(1), where + ": the frozen weight");
    Tensor a = DeltaFolding.constant(convA.input(1), where + ": A");
    Tensor b = DeltaFolding.constant(convB.input(1), where + ": B");
    Tensor s = DeltaFolding.constant(scale.input(sIndex), where + ": the scale");
    DeltaFolding.setConstant(g, conv, 1, merged(w, a, b, s, where));
    DeltaFolding.bypass(merge, merge.input(0));
    DeltaFolding.remove(g, merge, touched, removed);
    DeltaFolding.remove(g, scale, touched, removed);
    DeltaFolding.remove(g, convB, touched, removed);
    DeltaFolding.remove(g, convA, touched, removed);
  }

  /** The node of the branch, tagged {@code role}, that produces {@code v}. */
  private static Node producer(Value v, String op, String role, String where) {
    Node p = v == null ? null : v.producer().orElse(null);
    checkState(
        p != null && p.is(op)
            && GraftTags.method(p).filter(ConvLoraPass.METHOD::equals).isPresent()
            && GraftTags.role(p).filter(role::equals).isPresent(),
        "%s: expected a %s node tagged '%s' producing '%s', found %s. The branch was edited after the"
            + " conv-lora pass; export with --adapter-only to keep it as nodes.",
        where, op, role, v == null ? "(absent)" : v.name(),
        p == null ? "none" : "'" + p.displayName() + "' (" + p.opType() + ", " + p.docString() + ")");
    return p;
  }

  /** W + s · (B[o, r] · A[r, i·k]) reshaped to W, computed by ORT. */
  private static Tensor merged(Tensor w, Tensor a, Tensor b, Tensor s, String where) {
    long[] wd = w.dims();
    long o = wd[0];
    long r = a.dims()[0];
    GraphBuilder gb = GraphBuilder.create("fold_conv_lora");
    Value wv = gb.input("W", w.dataType(), (Object[]) DeltaFolding.boxed(wd));
    Value av = gb.input("A", a.dataType(), (Object[]) DeltaFolding.boxed(a.dims()));
    Value bv = gb.input("B", b.dataType(), (Object[]) DeltaFolding.boxed(b.dims()));
    Value sv = gb.input("s", s.dataType(), (Object[]) DeltaFolding.boxed(s.dims()));
    Value b2 = gb.op("Reshape", bv, gb.int64s(o, r));
    Value a2 = gb.op("Reshape", av, gb.int64s(r, -1));
    Value delta = gb.op("Reshape", gb.op("Mul", gb.op("MatMul", b2, a2), sv), gb.int64s(wd));
    gb.output("merged", gb.op("Add", wv, delta));
    gb.typed(gb.graph().outputs().get(0), w.dataType(), (Object[]) DeltaFolding.boxed(wd));
    Map<String, Tensor> feeds = new LinkedHashMap<>();
    feeds.put("W", w);
    feeds.put("A", a);
    feeds.put("B", b);
    feeds.put("s", s);
    try {
      return OrtEval.run(gb.model(17), feeds).get("merged");
    } catch (RuntimeException e) {
      throw new IllegalStateException(
          where + ": cannot compute W + s·B·A (W " + w.shape() + ", A " + a.shape() + ", B " + b.shape() + "): "
              + e.getMessage(), e);
    }
  }
}
