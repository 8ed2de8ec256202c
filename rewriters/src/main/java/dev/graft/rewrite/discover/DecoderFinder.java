package dev.graft.rewrite.discover;

import static dev.graft.rewrite.discover.GraphFacts.constant;
import static dev.graft.rewrite.discover.GraphFacts.floatConstant;
import static dev.graft.rewrite.discover.GraphFacts.isConstant;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMap;
import com.google.common.collect.ImmutableSet;
import dev.graft.ir.DataType;
import dev.graft.ir.Node;
import dev.graft.ir.Use;
import dev.graft.ir.Value;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.GraftTags;
import dev.graft.rewrite.discover.NormModule.Style;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Deque;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.Set;

/**
 * Finds the blocks of LLaMA-style decoders, in the standard export and in ONNX Runtime GenAI's
 * contrib-op form, and names their parts:
 *
 * <pre>
 *   layer.N.attention.norm ── layer.N.attention.{query,key,value} ── attention ── layer.N.attention.output
 *   layer.N.mlp.norm ── layer.N.mlp.gate ── act ─┐
 *                   └── layer.N.mlp.up ──────────Mul── layer.N.mlp.down        final.norm ── lm_head
 * </pre>
 *
 * Attention is either a Softmax between a score MatMul and a context MatMul whose operands come
 * from projections through head reshapes, rotary embeddings (Slice, Neg, Concat, Mul, Add),
 * past-key Concats and grouped-query repeats (Unsqueeze, Expand, Reshape); or a {@code
 * com.microsoft} GroupQueryAttention / MultiHeadAttention node reading the three projections.
 * The MLP is a Mul of an activated gate projection ({@code Mul(g, Sigmoid(g))}, Gelu, Relu) and an
 * up projection of the same input, read by the down projection. Norms are the RMSNorms that feed
 * them: decomposed ({@code w * (x * 1/sqrt(mean(x^2) + eps))}), SimplifiedLayerNormalization, or
 * SkipSimplifiedLayerNormalization. Linears include {@code com.microsoft} MatMulNBits (4-bit
 * weights; in and out features from its K and N). Layers count attention blocks in topological
 * order. Node and initializer names are never read.
 */
final class DecoderFinder {
  /** Ops between a projection and the score or context MatMul in the standard form. */
  private static final ImmutableSet<String> ATTENTION_PATH_OPS =
      ImmutableSet.of(
          "Reshape", "Transpose", "Identity", "Squeeze", "Unsqueeze", "Expand", "Concat", "Slice",
          "Neg", "Mul", "Add", "Div", "Cast", "Tile");
  private static final ImmutableSet<String> FUSED_ATTENTION =
      ImmutableSet.of("GroupQueryAttention", "MultiHeadAttention");
  private static final String MS = "com.microsoft";

  /** What the finder names: linears and norms of decoder blocks, and the linears it added. */
  record Found(
      ImmutableMap<LinearModule, String> linearNames,
      ImmutableMap<LinearModule, Integer> linearLayers,
      ImmutableList<LinearModule> extraLinears,
      ImmutableList<NormModule> norms,
      ImmutableMap<LinearModule, String> blockOf,
      ImmutableSet<Node> rotaryLookups) {
    boolean isEmpty() {
      return linearNames.isEmpty();
    }
  }

  private final GraphFacts facts;
  private final Map<Value, LinearModule> byOutput = new IdentityHashMap<>();
  private final Map<Value, List<LinearModule>> byInput = new IdentityHashMap<>();
  private final Map<LinearModule, String> names = new IdentityHashMap<>();
  private final Map<LinearModule, Integer> layers = new IdentityHashMap<>();
  private final Map<LinearModule, String> blockOf = new IdentityHashMap<>();
  private final Map<Node, NormModule> norms = new LinkedHashMap<>();
  /** Gathers of rotary cos/sin tables by position: buffers, not embeddings to train. */
  private final Set<Node> rotaryLookups = new LinkedHashSet<>();

  private DecoderFinder(GraphFacts facts) {
    this.facts = facts;
  }

  /**
   * The decoder blocks of {@code nodes}; {@code linears} are those {@link LinearFinder} found
   * (MatMulNBits linears are found here and returned in {@link Found#extraLinears}).
   */
  static Found find(GraphFacts facts, List<Node> nodes, List<LinearModule> linears) {
    return new DecoderFinder(facts).run(nodes, linears);
  }

  private Found run(List<Node> nodes, List<LinearModule> linears) {
    List<LinearModule> extra = new ArrayList<>();
    for (Node n : nodes) matMulNBits(n).ifPresent(extra::add);
    for (LinearModule l : linears) index(l);
    for (LinearModule l : extra) index(l);

    // Attention blocks, ordered along the stream.
    record Attention(Node anchor, LinearModule q, LinearModule k, LinearModule v, LinearModule o) {}
    List<Attention> attentions = new ArrayList<>();
    for (Node n : nodes) {
      if (GraftTags.isGraft(n)) continue;
      Optional<LinearModule[]> qkvo =
          n.is("Softmax") ? standardAttention(n)
              : MS.equals(n.domain()) && FUSED_ATTENTION.contains(n.opType()) ? fusedAttention(n)
              : Optional.empty();
      qkvo.ifPresent(p -> attentions.add(new Attention(n, p[0], p[1], p[2], p[3])));
    }
    if (attentions.isEmpty()) {
      return new Found(ImmutableMap.of(), ImmutableMap.of(), ImmutableList.of(), ImmutableList.of(), ImmutableMap.of(), ImmutableSet.of());
    }
    attentions.sort(Comparator.comparingInt(a -> facts.position(a.anchor())));
    List<Integer> anchors = new ArrayList<>();
    for (int i = 0; i < attentions.size(); i++) {
      Attention a = attentions.get(i);
      String base = "layer." + i + ".attention";
      name(a.q(), base + ".query", i);
      name(a.k(), base + ".key", i);
      name(a.v(), base + ".value", i);
      name(a.o(), base + ".output", i);
      blockOf.put(a.o(), base);
      anchors.add(facts.position(a.anchor()));
      normBehind(a.q().input(), base + ".norm", i);
    }

    // Gated MLPs: the layer is that of the last attention block before the gate.
    int lastDown = -1;
    for (Node n : nodes) {
      Optional<LinearModule[]> gud = gatedMlp(n);
      if (gud.isEmpty()) continue;
      int pos = facts.position(gud.get()[0].node());
      int layer = -1;
      for (int i = 0; i < anchors.size(); i++) if (anchors.get(i) < pos) layer = i;
      if (layer < 0) continue;
      String base = "layer." + layer + ".mlp";
      name(gud.get()[0], base + ".gate", layer);
      name(gud.get()[1], base + ".up", layer);
      name(gud.get()[2], base + ".down", layer);
      blockOf.put(gud.get()[2], base);
      normBehind(gud.get()[0].input(), base + ".norm", layer);
      lastDown = Math.max(lastDown, facts.position(gud.get()[2].node()));
    }

    // The LM head: the one unnamed linear after the last block whose result leaves the graph.
    int last = Math.max(lastDown, anchors.get(anchors.size() - 1));
    for (LinearModule l : byOutput.values()) {
      if (names.containsKey(l) || facts.position(l.node()) < last || !l.output().isGraphOutput()) continue;
      names.put(l, "lm_head");
      normBehind(l.input(), "final.norm", -1);
    }

    ImmutableList<NormModule> namedNorms =
        norms.values().stream()
            .sorted(Comparator.comparingInt(m -> facts.position(m.nodes().get(0))))
            .collect(ImmutableList.toImmutableList());
    return new Found(
        ImmutableMap.copyOf(names), ImmutableMap.copyOf(layers), ImmutableList.copyOf(extra),
        namedNorms, ImmutableMap.copyOf(blockOf), ImmutableSet.copyOf(rotaryLookups));
  }

  /** The linear whose result {@code v} is: directly, or behind the merge a pass wrapped it in. */
  private LinearModule linearAt(Value v) {
    if (v == null) return null;
    LinearModule l = byOutput.get(v);
    return l != null ? l : byOutput.get(GraftTags.origin(v));
  }

  private void index(LinearModule l) {
    if (l.kind() != ModuleKind.LINEAR) return;
    byOutput.put(l.output(), l);
    byInput.computeIfAbsent(l.input(), k -> new ArrayList<>()).add(l);
  }

  private void name(LinearModule l, String name, int layer) {
    names.put(l, name);
    if (layer >= 0) layers.put(l, layer);
  }

  // ---- linears ---------------------------------------------------------------------------------

  /** MatMulNBits(x, B, scales[, zero_points, g_idx, bias]) with constant B and an optional bias Add. */
  private static Optional<LinearModule> matMulNBits(Node n) {
    if (!n.opType().equals("MatMulNBits") || !MS.equals(n.domain()) || GraftTags.isGraft(n)) return Optional.empty();
    Value x = n.input(0);
    if (x == null || isConstant(x) || !isConstant(n.input(1))) return Optional.empty();
    long in = n.attrLong("K", -1);
    long out = n.attrLong("N", -1);
    if (in <= 0 || out <= 0) return Optional.empty();
    return LinearFinder.withBiasAdd(n, x, n.input(5), in, out);
  }

  // ---- attention -------------------------------------------------------------------------------

  /** q, k, v, o of a Softmax attention whose operands come through rotary and GQA ops. */
  private Optional<LinearModule[]> standardAttention(Node softmax) {
    Node score = null;
    Value cur = softmax.input(0);
    for (int step = 0; step < 6 && score == null; step++) {
      Node p = cur.producer().orElse(null);
      if (p == null || GraftTags.isGraft(p)) return Optional.empty();
      if (p.is("MatMul") && !isConstant(p.input(0)) && !isConstant(p.input(1))) {
        score = p;
      } else if ((p.is("Div") || p.is("Mul") || p.is("Add") || p.is("Where") || p.is("Cast")) && p.inputCount() >= 1) {
        // Scale or mask: follow the operand that depends on a MatMul of two activations.
        Value next = null;
        for (Value in : p.inputs()) {
          if (in != null && !isConstant(in) && reachesActivationMatMul(in)) next = in;
        }
        if (next == null) return Optional.empty();
        cur = next;
      } else {
        return Optional.empty();
      }
    }
    if (score == null) return Optional.empty();
    Optional<Use> r = GraphFacts.onlyReader(softmax.output());
    if (r.isEmpty() || !r.get().node().is("MatMul") || r.get().index() != 0) return Optional.empty();
    Node context = r.get().node();
    Optional<LinearModule> q = projectionAbove(score.input(0));
    Optional<LinearModule> k = projectionAbove(score.input(1));
    Optional<LinearModule> v = projectionAbove(context.input(1));
    Optional<LinearModule> o = projectionBelow(context.output());
    if (q.isEmpty() || k.isEmpty() || v.isEmpty() || o.isEmpty()) return Optional.empty();
    if (q.get() == k.get() || k.get() == v.get()) return Optional.empty();
    return Optional.of(new LinearModule[] {q.get(), k.get(), v.get(), o.get()});
  }

  private static boolean reachesActivationMatMul(Value v) {
    Value cur = v;
    for (int i = 0; i < 4; i++) {
      Node p = cur.producer().orElse(null);
      if (p == null) return false;
      if (p.is("MatMul")) return !isConstant(p.input(0)) && !isConstant(p.input(1));
      if (!(p.is("Div") || p.is("Mul") || p.is("Cast") || p.is("Identity"))) return false;
      cur = p.input(0);
    }
    return false;
  }

  /** q, k, v, o around a com.microsoft GroupQueryAttention or MultiHeadAttention node. */
  private Optional<LinearModule[]> fusedAttention(Node n) {
    LinearModule[] p = new LinearModule[4];
    for (int i = 0; i < 3; i++) {
      Value in = n.input(i);
      if (in == null) return Optional.empty(); // packed QKV: one projection, not three
      p[i] = linearAt(in);
      if (p[i] == null) return Optional.empty();
    }
    Optional<LinearModule> o = projectionBelow(n.outputs().get(0));
    if (o.isEmpty()) return Optional.empty();
    p[3] = o.get();
    return Optional.of(p);
  }

  /**
   * The one projection above {@code v}: a bounded walk up through head, rotary, past-key and
   * repeat ops, stopping at linears; graph inputs (past keys, position ids) and constants end a
   * path without a linear.
   */
  private Optional<LinearModule> projectionAbove(Value v) {
    Set<LinearModule> found = new LinkedHashSet<>();
    Deque<Value> todo = new ArrayDeque<>();
    Set<Value> seen = new HashSet<>();
    todo.add(v);
    int budget = 48;
    while (!todo.isEmpty()) {
      Value raw = todo.pop();
      LinearModule l = linearAt(raw);
      Value cur = GraftTags.origin(raw);
      if (!seen.add(cur) || isConstant(cur)) continue;
      if (l != null) {
        found.add(l);
        continue;
      }
      Node p = cur.producer().orElse(null);
      if (p == null) continue;
      if (GraftTags.isGraft(p) || --budget < 0) return Optional.empty();
      // Rotary tables gathered by position: a path that ends in a lookup, not a projection.
      if (p.is("Gather") || p.is("Cos") || p.is("Sin") || p.is("Shape")) {
        if (p.is("Gather")) rotaryLookups.add(p);
        continue;
      }
      if (!p.domain().isEmpty() || !ATTENTION_PATH_OPS.contains(p.opType())) return Optional.empty();
      for (Value in : p.inputs()) if (in != null) todo.add(in);
    }
    return found.size() == 1 ? Optional.of(found.iterator().next()) : Optional.empty();
  }

  /** The projection that reads {@code v} through the head merge (Transpose, Reshape). */
  private Optional<LinearModule> projectionBelow(Value v) {
    Value cur = v;
    for (int step = 0; step < 6; step++) {
      List<LinearModule> readers = byInput.getOrDefault(cur, List.of());
      if (readers.size() == 1) return Optional.of(readers.get(0));
      Optional<Use> r = GraphFacts.onlyReader(cur);
      if (r.isEmpty() || r.get().index() != 0) return Optional.empty();
      Node n = r.get().node();
      if (!(n.is("Transpose") || n.is("Reshape") || n.is("Identity") || n.is("Cast"))) return Optional.empty();
      cur = n.output();
    }
    return Optional.empty();
  }

  // ---- MLP -------------------------------------------------------------------------------------

  /** gate, up, down of {@code Mul(act(gate(x)), up(x))} read by down, rooted at that Mul. */
  private Optional<LinearModule[]> gatedMlp(Node mul) {
    if (!mul.is("Mul") || GraftTags.isGraft(mul) || mul.inputCount() != 2) return Optional.empty();
    List<LinearModule> downs = byInput.getOrDefault(mul.output(), List.of());
    if (downs.size() != 1) return Optional.empty();
    for (int side = 0; side < 2; side++) {
      LinearModule up = linearAt(mul.input(1 - side));
      Optional<LinearModule> gate = activatedGate(mul.input(side));
      if (up != null && gate.isPresent() && gate.get() != up && gate.get().input() == up.input()) {
        return Optional.of(new LinearModule[] {gate.get(), up, downs.get(0)});
      }
    }
    return Optional.empty();
  }

  /** g for {@code Mul(g, Sigmoid(g))} (SiLU, either order), {@code Gelu(g)} or {@code Relu(g)}. */
  private Optional<LinearModule> activatedGate(Value a) {
    Node p = a.producer().orElse(null);
    if (p == null || GraftTags.isGraft(p)) return Optional.empty();
    if (p.is("Mul") && p.inputCount() == 2) {
      for (int side = 0; side < 2; side++) {
        Node s = p.input(1 - side).producer().orElse(null);
        if (s != null && s.is("Sigmoid") && s.input(0) == p.input(side)) {
          return Optional.ofNullable(linearAt(p.input(side)));
        }
      }
      return Optional.empty();
    }
    if (p.is("Gelu") || p.is("Relu") || (p.opType().equals("FastGelu") && MS.equals(p.domain()))) {
      return Optional.ofNullable(linearAt(p.input(0)));
    }
    return Optional.empty();
  }

  // ---- norms -----------------------------------------------------------------------------------

  /** Names the RMSNorm that produces {@code v}, if one does. */
  private void normBehind(Value v, String name, int layer) {
    Node p = v.producer().orElse(null);
    if (p == null) return;
    Optional<NormModule> n = rmsNorm(p, v);
    if (n.isEmpty() || norms.containsKey(n.get().nodes().get(n.get().nodes().size() - 1))) return;
    NormModule m = n.get().named(name, layer >= 0 ? OptionalInt.of(layer) : OptionalInt.empty());
    norms.put(n.get().nodes().get(n.get().nodes().size() - 1), m);
  }

  /** The RMSNorm whose normalised output is {@code out}, produced by {@code p}. */
  private static Optional<NormModule> rmsNorm(Node p, Value out) {
    if (GraftTags.isGraft(p)) return Optional.empty();
    if (p.opType().equals("SimplifiedLayerNormalization") && p.domain().isEmpty()
        || p.opType().equals("SkipSimplifiedLayerNormalization") && MS.equals(p.domain())) {
      boolean skip = p.opType().startsWith("Skip");
      int gammaIndex = skip ? 2 : 1;
      if (out != p.outputs().get(0)) return Optional.empty();
      Optional<Tensor> gamma = constant(p.input(gammaIndex));
      if (gamma.isEmpty()) return Optional.empty();
      return Optional.of(
          new NormModule(
              "", OptionalInt.empty(), Style.RMS_NORM, p.input(0), out, GraftTags.origin(p.input(gammaIndex)),
              null, new Use(p, gammaIndex), null, gamma.get().numElements(), ImmutableList.of(p)));
    }
    // Decomposed: Mul(gamma, Mul(x, inv)) with inv = Div(1, s) | Reciprocal(s), or Div(x, s);
    // s = Sqrt(Add(ReduceMean(Pow(x, 2) | Mul(x, x)), eps)).
    if (!p.is("Mul") || p.inputCount() != 2) return Optional.empty();
    int gammaIndex = floatConstant(p.input(0), 1).isPresent() ? 0 : floatConstant(p.input(1), 1).isPresent() ? 1 : -1;
    if (gammaIndex < 0) return Optional.empty();
    Value normed = p.input(1 - gammaIndex);
    Node n = normed.producer().orElse(null);
    if (n == null || GraftTags.isGraft(n)) return Optional.empty();
    List<Node> nodes = new ArrayList<>();
    Value x;
    Node sqrt;
    if (n.is("Div")) {
      x = n.input(0);
      sqrt = n.input(1).producer().orElse(null);
      nodes.add(n);
    } else if (n.is("Mul")) {
      int invSide = -1;
      for (int side = 0; side < 2; side++) {
        Node inv = n.input(side).producer().orElse(null);
        if (inv != null && (inv.is("Reciprocal") || inv.is("Div") && isOne(inv.input(0)))) invSide = side;
      }
      if (invSide < 0) return Optional.empty();
      Node inv = n.input(invSide).producer().get();
      x = n.input(1 - invSide);
      sqrt = inv.input(inv.is("Div") ? 1 : 0).producer().orElse(null);
      nodes.add(inv);
      nodes.add(n);
    } else {
      return Optional.empty();
    }
    if (sqrt == null || !sqrt.is("Sqrt")) return Optional.empty();
    Node add = sqrt.input(0).producer().orElse(null);
    if (add == null || !add.is("Add")) return Optional.empty();
    int meanSide = isConstant(add.input(1)) ? 0 : isConstant(add.input(0)) ? 1 : -1;
    if (meanSide < 0) return Optional.empty();
    Node mean = add.input(meanSide).producer().orElse(null);
    if (mean == null || !mean.is("ReduceMean")) return Optional.empty();
    Node square = mean.input(0).producer().orElse(null);
    if (square == null) return Optional.empty();
    boolean isSquare =
        square.is("Pow") && square.input(0) == x && constant(square.input(1)).map(t -> t.numElements() == 1 && t.toDoubleArray()[0] == 2.0).orElse(false)
            || square.is("Mul") && square.input(0) == x && square.input(1) == x;
    if (!isSquare) return Optional.empty();
    ImmutableList.Builder<Node> all = ImmutableList.builder();
    all.add(square, mean, add, sqrt).addAll(nodes).add(p);
    Tensor gamma = constant(p.input(gammaIndex)).get();
    return Optional.of(
        new NormModule(
            "", OptionalInt.empty(), Style.RMS_NORM, x, out, GraftTags.origin(p.input(gammaIndex)), null,
            new Use(p, gammaIndex), null, gamma.numElements(), all.build()));
  }

  private static boolean isOne(Value v) {
    return constant(v).map(t -> t.numElements() == 1 && t.toDoubleArray()[0] == 1.0).orElse(false);
  }
}
