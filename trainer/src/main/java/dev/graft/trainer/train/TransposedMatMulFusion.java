package dev.graft.trainer.train;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Attr;
import dev.graft.ir.Constants;
import dev.graft.ir.DataType;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import java.util.ArrayList;
import java.util.List;

/**
 * After differentiation, folds the transposes that the MatMul gradient rule writes around
 * activations into one {@code com.microsoft} FusedMatMul (in every ORT build), so that ORT never
 * sees them:
 *
 * <pre>
 *   y = MatMul(a, Transpose[.., r-1, r-2](b))   =>  y = com.microsoft.FusedMatMul[transB=1](a, b)
 *   y = MatMul(Transpose[.., r-1, r-2](a), b)   =>  y = com.microsoft.FusedMatMul[transA=1](a, b)
 * </pre>
 *
 * ORT fuses the same pattern itself (MatmulTransposeFusion), but only after its transpose
 * optimizer has run, and that one first merges the rule's Transpose with the forward pass's
 * head-splitting Transpose ({@code Transpose[0,2,1,3]} of the attention's query, key and value)
 * into one {@code Transpose[0,2,3,1]}, which no MatMul can absorb: the train step then copies
 * every head's key, query and value into a strided transposed tensor once more in the backward
 * pass (three copies per layer, the slowest transposes of the step). Fused here, the
 * backward reads the forward's tensors as they are.
 *
 * <p>Only transposes of values that are not constants are folded (a frozen weight's transpose is
 * constant-folded and pre-packed by ORT), only float32 ones (FusedMatMul's CPU kernel type), only
 * where the Transpose swaps exactly the last two axes of a value of rank 2 or more, and only where
 * the Transpose has no other use. The fused node takes the MatMul's name and output.
 *
 * <p>Off by default ({@link #enabled}): measured under load, the attention's backward matmuls
 * alone run faster (16.1 -> 12.5 ms, {@code bench/micro/attention-backward.txt}) but the whole
 * step showed no difference beyond the noise, while peak RSS rose by about 45 MB at 32 x 64 in
 * every pair (docs/performance.md, session 4). {@code -Dgraft.train.transposedMatMul=1} turns it
 * on, for measuring on a quiet machine.
 */
public final class TransposedMatMulFusion {
  /** The system property that turns the fusion on in {@link TrainStepGraph}. */
  public static final String PROPERTY = "graft.train.transposedMatMul";

  private TransposedMatMulFusion() {}

  /** Whether {@link TrainStepGraph} runs the fusion: {@value #PROPERTY} is 1 or true. */
  public static boolean enabled() {
    String v = System.getProperty(PROPERTY, "");
    return v.equals("1") || v.equalsIgnoreCase("true");
  }

  /** Fuses every candidate; returns the names of the FusedMatMul nodes made. */
  public static ImmutableList<String> fuse(Model m) {
    Graph g = m.graph();
    ImmutableList.Builder<String> fused = ImmutableList.builder();
    for (Node mm : List.copyOf(g.nodes())) {
      if (!mm.isIn(g) || !mm.is("MatMul") || !mm.domain().isEmpty()) continue;
      Node ta = swapOfLastTwo(mm.input(0), mm);
      Node tb = swapOfLastTwo(mm.input(1), mm);
      if (ta == null && tb == null) continue;
      fused.add(rewrite(g, mm, ta, tb));
    }
    ImmutableList<String> names = fused.build();
    if (!names.isEmpty()) GeluFusion.importDomain(m);
    return names;
  }

  private static String rewrite(Graph g, Node mm, Node ta, Node tb) {
    Value y = mm.output();
    String name = y.name();
    String nodeName = mm.name().isEmpty() ? g.freshName("FusedMatMul") : mm.name();
    List<Value> inputs = new ArrayList<>();
    inputs.add(ta == null ? mm.input(0) : ta.input(0));
    inputs.add(tb == null ? mm.input(1) : tb.input(0));
    Node fused =
        new Node(
            GeluFusion.DOMAIN,
            "FusedMatMul",
            inputs,
            List.of(g.freshName(name + "_fused")),
            List.of(Attr.of("transA", ta == null ? 0L : 1L), Attr.of("transB", tb == null ? 0L : 1L), Attr.of("alpha", 1f)),
            nodeName);
    g.insertBefore(mm, fused);
    g.replaceValue(y, fused.output(), List.of(mm));
    for (Node t : new Node[] {ta, tb}) {
      if (t != null && t.isIn(g) && !t.output().hasUses() && !t.output().isGraphOutput()) g.removeNode(t);
    }
    return nodeName;
  }

  /** The Transpose producing {@code v} when it swaps the last two axes of a float32 activation and feeds only {@code user}. */
  private static Node swapOfLastTwo(Value v, Node user) {
    if (v == null || v.isGraphOutput() || v.uses().size() != 1 || v.uses().get(0).node() != user) return null;
    Node t = v.producer().orElse(null);
    if (t == null || !t.is("Transpose") || !t.domain().isEmpty()) return null;
    Value in = t.input(0);
    if (in.dataType().orElse(null) != DataType.FLOAT || Constants.valueOf(in).isPresent()) return null;
    long[] perm = t.attrLongs("perm").orElse(null);
    if (perm == null || perm.length < 2) return null;
    int r = perm.length;
    for (int i = 0; i < r - 2; i++) if (perm[i] != i) return null;
    return perm[r - 2] == r - 1 && perm[r - 1] == r - 2 ? t : null;
  }
}
