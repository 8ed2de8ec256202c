package dev.graft.rewrite.discover;

import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.GraftTags;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * Names the convolutions of CNNs by the blocks structure shows, so recipes can say {@code
 * stage.2.block.1.conv.pw} instead of {@code conv.23}. Works on the Conv modules {@link
 * LinearFinder} found (weights in initializers or Constant nodes alike) and the norms and residual
 * adds discovered beside them.
 *
 * <pre>
 *   roles    dw          Conv with group = in = out channels (depthwise)
 *            expand, pw  the 1 × 1 Convs before and after a depthwise one (inverted residual)
 *            se.reduce   a Conv that reads GlobalAveragePool (squeeze-excitation), se.expand the
 *                        Conv that reads it through its activation
 *            conv.K      other Convs of a block, in order; downsample: a Conv on the block's input
 *                        beside the block's first one (a shortcut projection)
 *   blocks   end after the pointwise Conv that follows a depthwise one, or at a residual Add;
 *            the first full Conv of a network with depthwise blocks is stem.conv, Convs after the
 *            last such block are last.conv(.K)
 *   stages   a block that downsamples (a Conv with stride > 1) opens a new stage
 *   names    stage.S.block.B.conv.dw  stage.S.block.B.se.reduce  stage.S.block.B.residual
 *            stage.S.block.B.conv.dw.norm (the BatchNormalization reading that Conv)
 *            embeddings.patch (a Conv on a graph input with kernel = stride, a ViT's patches)
 * </pre>
 */
final class CnnFinder {
  private enum Role { FULL, ONE_BY_ONE, DEPTHWISE }

  private final GraphFacts facts;

  private CnnFinder(GraphFacts facts) {
    this.facts = facts;
  }

  /** Names for conv nodes, norm nodes (their first) and residual adds; only those it can name. */
  static Map<Node, String> names(
      GraphFacts facts, List<LinearModule> linears, List<NormModule> norms, List<ResidualModule> residuals) {
    return new CnnFinder(facts).run(linears, norms, residuals);
  }

  private Map<Node, String> run(List<LinearModule> linears, List<NormModule> norms, List<ResidualModule> residuals) {
    Map<Node, String> out = new IdentityHashMap<>();
    List<LinearModule> convs = new ArrayList<>();
    for (LinearModule l : linears) if (l.kind() == ModuleKind.CONV) convs.add(l);
    if (convs.isEmpty()) return out;
    convs.sort(Comparator.comparingInt(l -> facts.position(l.node())));

    Map<Node, LinearModule> seReduce = new IdentityHashMap<>();
    List<LinearModule> main = new ArrayList<>();
    Map<LinearModule, LinearModule> seExpandOf = new IdentityHashMap<>(); // expand -> reduce
    for (LinearModule c : convs) {
      if (patchEmbedding(c)) {
        out.put(c.node(), "embeddings.patch");
      } else if (GraphFacts.producedBy(c.input(), "GlobalAveragePool") || GraphFacts.producedBy(c.input(), "ReduceMean")) {
        seReduce.put(c.node(), c);
      } else {
        Optional<LinearModule> r = seSource(c, seReduce);
        if (r.isPresent()) seExpandOf.put(c, r.get());
        else main.add(c);
      }
    }
    boolean depthwiseNet = main.stream().anyMatch(c -> role(c) == Role.DEPTHWISE);
    Set<Value> residualOutputs = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
    for (ResidualModule r : residuals) residualOutputs.add(r.add().output());

    // Blocks, in order.
    List<List<LinearModule>> blocks = new ArrayList<>();
    List<LinearModule> cur = new ArrayList<>();
    LinearModule stem = null;
    for (LinearModule c : main) {
      if (stem == null && blocks.isEmpty() && cur.isEmpty() && depthwiseNet && role(c) == Role.FULL) {
        stem = c;
        continue;
      }
      boolean shortcut = !cur.isEmpty() && c.input() == cur.get(0).input() && role(c) == Role.ONE_BY_ONE
          && cur.stream().noneMatch(x -> role(x) == Role.DEPTHWISE);
      if (!cur.isEmpty() && !shortcut && readsResidual(c, residualOutputs)) {
        blocks.add(cur);
        cur = new ArrayList<>();
      }
      cur.add(c);
      if (role(c) == Role.ONE_BY_ONE && cur.stream().anyMatch(x -> role(x) == Role.DEPTHWISE)) {
        blocks.add(cur);
        cur = new ArrayList<>();
      }
    }
    List<LinearModule> trailing = cur;
    if (!trailing.isEmpty() && (!depthwiseNet || trailing.stream().anyMatch(x -> role(x) == Role.DEPTHWISE))) {
      blocks.add(trailing);
      trailing = List.of();
    }
    if (stem != null) out.put(stem.node(), "stem.conv");
    for (int k = 0; k < trailing.size(); k++) {
      out.put(trailing.get(k).node(), trailing.size() == 1 ? "last.conv" : "last.conv." + k);
    }

    // Stages and names.
    int stage = 0;
    int block = 0;
    Map<LinearModule, String> blockOf = new IdentityHashMap<>();
    for (int i = 0; i < blocks.size(); i++) {
      List<LinearModule> b = blocks.get(i);
      if (i > 0 && b.stream().anyMatch(CnnFinder::strided)) {
        stage++;
        block = 0;
      }
      String base = "stage." + stage + ".block." + block;
      boolean hasDw = b.stream().anyMatch(x -> role(x) == Role.DEPTHWISE);
      int k = 0;
      boolean seenDw = false;
      for (LinearModule c : b) {
        String role;
        if (c != b.get(0) && c.input() == b.get(0).input()) role = "downsample";
        else if (hasDw && role(c) == Role.DEPTHWISE) role = "conv.dw";
        else if (hasDw && role(c) == Role.ONE_BY_ONE) role = seenDw ? "conv.pw" : "conv.expand";
        else role = "conv." + k++;
        if (role(c) == Role.DEPTHWISE) seenDw = true;
        out.put(c.node(), base + "." + role);
        blockOf.put(c, base);
      }
      block++;
    }
    // Squeeze-excitation convs belong to the block of the conv whose output they pool.
    for (Map.Entry<LinearModule, LinearModule> e : seExpandOf.entrySet()) {
      LinearModule reduce = e.getValue();
      String base = blockOf.entrySet().stream()
          .filter(b -> facts.position(b.getKey().node()) < facts.position(reduce.node()))
          .max(Comparator.comparingInt(b -> facts.position(b.getKey().node())))
          .map(Map.Entry::getValue).orElse("se");
      out.put(reduce.node(), base + ".se.reduce");
      out.put(e.getKey().node(), base + ".se.expand");
    }
    // A norm reading a named conv, and a residual add closing a block.
    Map<Value, String> convOutputs = new IdentityHashMap<>();
    for (LinearModule c : convs) if (out.containsKey(c.node())) convOutputs.put(c.output(), out.get(c.node()));
    for (NormModule n : norms) {
      String conv = convOutputs.get(n.input());
      if (conv != null) out.put(n.nodes().get(0), conv + ".norm");
    }
    for (ResidualModule r : residuals) {
      LinearModule last = null;
      for (LinearModule c : blockOf.keySet()) {
        if (facts.position(c.node()) < facts.position(r.add())
            && (last == null || facts.position(c.node()) > facts.position(last.node()))) {
          last = c;
        }
      }
      if (last != null) out.put(r.add(), blockOf.get(last) + ".residual");
    }
    return out;
  }

  /** A Conv that reads a graph input with kernel = stride > 1: patches of a ViT. */
  private static boolean patchEmbedding(LinearModule c) {
    if (!c.input().isGraphInput()) return false;
    Optional<long[]> strides = c.node().attrLongs("strides");
    long[] k = weightDims(c);
    return strides.isPresent() && k.length == 4 && strides.get().length == 2
        && strides.get()[0] == k[2] && strides.get()[1] == k[3] && k[2] > 1;
  }

  /** The SE reduce conv {@code c} reads through elementwise ops (a bias Add, an activation). */
  private static Optional<LinearModule> seSource(LinearModule c, Map<Node, LinearModule> seReduce) {
    Value v = c.input();
    for (int step = 0; step < 4 && v != null; step++) {
      Node p = v.producer().orElse(null);
      if (p == null || GraftTags.isGraft(p)) return Optional.empty();
      if (seReduce.containsKey(p)) return Optional.of(seReduce.get(p));
      if (!(p.is("Relu") || p.is("Add") || p.is("Clip") || p.is("HardSwish") || p.is("Sigmoid") || p.is("Mul"))) {
        return Optional.empty();
      }
      v = p.input(0);
    }
    return Optional.empty();
  }

  private boolean readsResidual(LinearModule c, Set<Value> residualOutputs) {
    Value v = c.input();
    for (int step = 0; step < 6 && v != null; step++) {
      if (residualOutputs.contains(v)) return true;
      Node p = v.producer().orElse(null);
      if (p == null || p.is("Conv")) return false;
      v = p.input(0);
    }
    return false;
  }

  private static Role role(LinearModule c) {
    long[] d = weightDims(c);
    long group = c.node().attrLong("group", 1);
    if (group > 1 && d.length >= 2 && d[1] == 1 && group == d[0]) return Role.DEPTHWISE;
    boolean oneByOne = d.length == 4 && d[2] == 1 && d[3] == 1;
    return oneByOne && group == 1 ? Role.ONE_BY_ONE : Role.FULL;
  }

  private static boolean strided(LinearModule c) {
    Optional<long[]> s = c.node().attrLongs("strides");
    if (s.isEmpty()) return false;
    for (long x : s.get()) if (x > 1) return true;
    return false;
  }

  private static long[] weightDims(LinearModule c) {
    return GraphFacts.constant(c.weight()).map(Tensor::dims).orElse(new long[0]);
  }
}
