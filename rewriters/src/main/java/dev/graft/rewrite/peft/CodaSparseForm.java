package dev.graft.rewrite.peft;

import static com.google.common.base.Preconditions.checkArgument;
import static com.google.common.base.Preconditions.checkState;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Attr;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Use;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.rewrite.GraftTags;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Turns a CoDA model's dense layers (as {@link CodaPass} writes them, trained or not) into the
 * inference form that really skips the unselected tokens' heavy computation:
 *
 * <pre>
 *   y = Add(L(x), A(x) + (λ - 1)·(L(x) - x))                                     dense: L on n tokens
 *   =>
 *   i     = TopK(Where(mask, s, -inf), k).indices                                [batch, k]
 *   x_sel = GatherElements(x, expand(i))                                         [batch, k, width]
 *   y     = x + A(x) + ScatterElements(0, expand(i), GatherElements(w, i)·(L'(x_sel) - x_sel))
 * </pre>
 *
 * w is 1 at tokens and 0 at padding ({@link CodaPass.ExportWeights#ONE}, the default: the hard
 * TopK alone, the soft top-k's iterations left out) or the soft top-k's λ ({@link
 * CodaPass.ExportWeights#LAMBDA}), as the model's metadata says.
 *
 * L' is a copy of the layer's nodes in which x_sel replaces x, except the key and value
 * projections and what brings them to the attention matmuls (recorded by the pass): those keep
 * reading all n tokens of x, so the k selected tokens are the queries over every key. The dense
 * layer, no longer read, is removed (its frozen weights stay, read by the copy). The result
 * equals {@link CodaPass.Form#HARD} on the same weights. The metadata key {@value #FORM_KEY}
 * records that a model is in this form, and a second application is refused.
 */
public final class CodaSparseForm {
  public static final String FORM_KEY = "graft.coda.form";

  private CodaSparseForm() {}

  /**
   * Whether the export of {@code m} weighs routed tokens by 1 (the hard top-k alone; the default,
   * also for models written before the option) rather than by the soft top-k's λ.
   */
  static boolean weightsOne(Model m) {
    return !"lambda".equals(m.metadata().get(CodaPass.EXPORT_WEIGHTS_KEY));
  }

  /** Whether {@code m} has CoDA layers that are still dense. */
  public static boolean applies(Model m) {
    return !CodaLayers.read(m).isEmpty() && !"sparse".equals(m.metadata().get(FORM_KEY));
  }

  /** Rewrites every recorded CoDA layer of {@code m} into its sparse form, in place. */
  public static void apply(Model m) {
    ImmutableList<CodaLayers.Layer> layers = CodaLayers.read(m);
    checkArgument(!layers.isEmpty(), "The model has no CoDA layers (no '%s' metadata): rewrite it with the coda method first.", CodaLayers.KEY);
    checkArgument(!"sparse".equals(m.metadata().get(FORM_KEY)), "The model's CoDA layers are already in the sparse inference form.");
    Graph g = m.graph();
    boolean one = weightsOne(m);
    Set<Value> read = new HashSet<>();
    for (Value v : g.initializers()) if (v.hasUses()) read.add(v);
    for (CodaLayers.Layer layer : layers) sparsify(g, layer, one);
    removeDeadNodes(g);
    removeUnread(g, read);
    m.putMetadata(FORM_KEY, "sparse");
  }

  /**
   * Turns soft dense layers into the hard dense form ({@link CodaPass.Form#HARD}): λ, where the
   * layer reads it, becomes {@code λ · onehot(TopK(s, k))}. The heavy layer still runs on every
   * token; this is the oracle the sparse form must reproduce. Layers already hard are left alone.
   */
  public static void toHard(Model m) {
    ImmutableList<CodaLayers.Layer> layers = CodaLayers.read(m);
    checkArgument(!layers.isEmpty(), "The model has no CoDA layers (no '%s' metadata): rewrite it with the coda method first.", CodaLayers.KEY);
    checkArgument(!"sparse".equals(m.metadata().get(FORM_KEY)), "The model's CoDA layers are in the sparse form already, which is hard.");
    Graph g = m.graph();
    boolean one = weightsOne(m);
    for (CodaLayers.Layer layer : layers) {
      Value scores = value(g, layer, layer.scores());
      Value valid = layer.valid().isEmpty() ? null : value(g, layer, layer.valid());
      Value lambda = value(g, layer, layer.lambda());
      Value k = value(g, layer, layer.k());
      List<Use> readers = lambda.uses();
      if (readers.stream().anyMatch(u -> u.node().is("Mul"))) continue;
      Node last = lambda.producer().orElseThrow();
      GraphBuilder b = dev.graft.rewrite.Splice.after(last).prefix("/graft/" + CodaPass.METHOD + "/" + layer.module() + "/hard");
      Value mask = CodaPass.hardMask(b, scores, valid, k, lambda);
      // Weights 1: the indicator of the top-k, padding (picked when a row has fewer tokens than k) at 0.
      Value w = !one ? b.op("Mul", lambda, mask)
          : valid == null ? mask
          : b.op("Mul", mask, b.op("Cast", List.of(valid), Attr.of("to", (long) dev.graft.ir.DataType.FLOAT.code())));
      for (Use u : readers) u.node().setInput(u.index(), w);
    }
  }

  private static void sparsify(Graph g, CodaLayers.Layer layer, boolean one) {
    Value x = value(g, layer, layer.input());
    Value y = value(g, layer, layer.heavy());
    Value dense = value(g, layer, layer.output());
    Value light = value(g, layer, layer.light());
    Value scores = value(g, layer, layer.scores());
    Value valid = layer.valid().isEmpty() ? null : value(g, layer, layer.valid());
    Value lambda = value(g, layer, layer.lambda());
    Value k = value(g, layer, layer.k());
    Map<String, Node> byName = new HashMap<>();
    for (Node n : g.nodes()) if (!n.name().isEmpty()) byName.put(n.name(), n);
    Set<Node> keyValue = new HashSet<>();
    for (String name : layer.keyValueNodes()) {
      Node n = byName.get(name);
      checkArgument(n != null, "CoDA layer %s: its key/value node '%s' is not in the graph. Was the model edited after the coda rewrite?", layer.module(), name);
      keyValue.add(n);
    }
    List<Node> heavy = heavyNodes(g, x, y, keyValue);
    checkState(!heavy.isEmpty(), "CoDA layer %s: no node leads from '%s' to '%s'", layer.module(), x.name(), y.name());

    Node merge = dense.producer().orElseThrow();
    int at = g.nodes().indexOf(merge) + 1;
    Node anchor = at < g.nodeCount() ? g.nodes().get(at) : null;
    GraphBuilder b = GraphBuilder.on(g).prefix("/graft/" + CodaPass.METHOD + "/" + layer.module() + "/sparse");
    if (anchor != null) b.before(anchor);
    int before = g.nodeCount();
    Value idx = CodaPass.topK(b, scores, valid, k);
    Value width = b.op("Slice", b.op("Shape", x), b.int64s(2), b.int64s(3));
    Value shape3 = b.op("Concat", List.of(b.op("Shape", idx), width), Attr.of("axis", 0L));
    Value idx3 = b.op("Expand", b.op("Reshape", idx, b.int64s(0, 0, 1)), shape3);
    Value xSel = b.op("GatherElements", List.of(x, idx3), Attr.of("axis", 1L));

    Map<Value, Value> copies = new IdentityHashMap<>();
    copies.put(x, xSel);
    for (Node n : heavy) {
      List<Value> inputs = new ArrayList<>();
      for (Value in : n.inputs()) inputs.add(in == null ? null : copies.getOrDefault(in, in));
      List<String> outs = new ArrayList<>();
      for (Value o : n.outputs()) outs.add(o == null ? "" : g.freshName(o.name() + "_sel"));
      String name = g.freshName(n.name().isEmpty() ? "/graft/coda/" + layer.module() + "/sel/" + n.opType() : n.name() + "_sel");
      Node copy = new Node(n.rawDomain(), n.opType(), inputs, outs, List.copyOf(n.attributes().values()), name);
      if (anchor != null) g.insertBefore(anchor, copy);
      else g.addNode(copy);
      for (int i = 0; i < n.outputs().size(); i++) {
        if (n.output(i) != null) copies.put(n.output(i), copy.output(i));
      }
    }
    Value ySel = copies.get(y);
    // The weight of each routed token: λ, or with weights 1 the token's validity (padding, which
    // TopK picks only when a row has fewer tokens than k, gets 0); none without a mask.
    Value w = !one ? lambda : valid == null ? null : b.op("Cast", List.of(valid), Attr.of("to", (long) dev.graft.ir.DataType.FLOAT.code()));
    Value update = b.op("Sub", ySel, xSel);
    if (w != null) {
      Value wSel = b.op("Reshape", b.op("GatherElements", List.of(w, idx), Attr.of("axis", 1L)), b.int64s(0, 0, 1));
      update = b.op("Mul", update, wSel);
    }
    Value zeros = b.op("ConstantOfShape", List.of(b.op("Shape", x)), Attr.of("value", DenseTensor.ofFloats(null, new long[] {1}, 0f)));
    Value scattered = b.op("ScatterElements", List.of(zeros, idx3, update), Attr.of("axis", 1L));
    Value sparse = b.op("Add", b.op("Add", x, light), scattered);
    for (Node n : g.nodes().subList(at, at + g.nodeCount() - before)) GraftTags.tag(n, CodaPass.METHOD, layer.module(), "sparse");
    // Readers of the dense output read the sparse one, which takes its name.
    for (Use u : dense.uses()) u.node().setInput(u.index(), sparse);
    String name = dense.name();
    boolean output = dense.isGraphOutput();
    int outIndex = g.outputs().indexOf(dense);
    g.rename(dense, g.freshName(name + "_dense"));
    g.rename(sparse, name);
    if (output) {
      sparse.setTypeOf(dense);
      g.setOutput(outIndex, sparse);
    }
  }

  /**
   * The layer's nodes a token's query path runs through: reachable from x without entering the
   * key/value region, and leading to y. In stored (topological) order.
   */
  private static List<Node> heavyNodes(Graph g, Value x, Value y, Set<Node> keyValue) {
    Set<Node> forward = new HashSet<>();
    ArrayDeque<Value> todo = new ArrayDeque<>();
    todo.add(x);
    while (!todo.isEmpty()) {
      Value v = todo.pop();
      for (Use u : v.uses()) {
        Node n = u.node();
        if (keyValue.contains(n) || !forward.add(n)) continue;
        for (Value o : n.outputs()) if (o != null) todo.push(o);
      }
    }
    Set<Node> backward = new HashSet<>();
    ArrayDeque<Node> up = new ArrayDeque<>();
    y.producer().ifPresent(up::add);
    while (!up.isEmpty()) {
      Node n = up.pop();
      if (!backward.add(n)) continue;
      for (Value in : n.inputs()) if (in != null) in.producer().ifPresent(up::push);
    }
    List<Node> out = new ArrayList<>();
    for (Node n : g.nodes()) if (forward.contains(n) && backward.contains(n)) out.add(n);
    return out;
  }

  /** Removes nodes whose outputs nothing reads, until none is left. */
  private static void removeDeadNodes(Graph g) {
    boolean again = true;
    while (again) {
      again = false;
      List<Node> nodes = new ArrayList<>(g.nodes());
      for (int i = nodes.size() - 1; i >= 0; i--) {
        Node n = nodes.get(i);
        boolean dead = true;
        for (Value o : n.outputs()) {
          if (o != null && (o.hasUses() || o.isGraphOutput())) {
            dead = false;
            break;
          }
        }
        if (dead && n.subgraphs().isEmpty()) {
          g.removeNode(n);
          again = true;
        }
      }
    }
  }

  /**
   * Removes the initializers in {@code read} (read before the rewrite) that nothing reads now:
   * the constants of the removed dense combination. Graph inputs and outputs stay, and so do
   * initializers that were unread before (not this rewrite's to judge).
   */
  private static void removeUnread(Graph g, Set<Value> read) {
    for (Value v : List.copyOf(g.initializers())) {
      if (read.contains(v) && !v.hasUses() && !v.isGraphOutput() && !v.isGraphInput()) g.removeInitializer(v);
    }
  }

  private static Value value(Graph g, CodaLayers.Layer layer, String name) {
    return g.value(name)
        .orElseThrow(
            () ->
                new IllegalArgumentException(
                    "CoDA layer " + layer.module() + ": value '" + name + "' is not in the graph. Was the model edited after the coda rewrite?"));
  }
}
