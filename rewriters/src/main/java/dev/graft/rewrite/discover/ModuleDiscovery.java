package dev.graft.rewrite.discover;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.ir.pattern.MatchResult;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Finds the modules of a graph from its structure: linear layers, attention and feed-forward
 * blocks, normalisations, embeddings and residual adds, each with a stable readable name.
 *
 * <p>Structure decides; names only fill gaps. Attention is a Softmax between a score MatMul of
 * two projected activations and a context MatMul; its query, key and value are the linears the
 * score and context operands come from through head reshapes; layer indices count attention
 * blocks in topological order along the residual stream. A feed-forward block is a linear whose
 * output reaches exactly one other linear through elementwise ops. A norm is named after the
 * block it belongs to: in post-norm encoders (BERT) the norm after a block's residual add, in
 * pre-norm ones the norm that feeds a block and is bypassed by the skip. Node names (the
 * exporter's {@code /encoder/layer.3/...} paths) name only what structure cannot: linears
 * outside any block ({@code fc1}, {@code pooler.dense}), convolutions and stray norms.
 * Initializer names are never read: exporters hide weights behind {@code onnx::MatMul_787}.
 *
 * <p>Names:
 *
 * <pre>
 *   embeddings.word  embeddings.position  embeddings.token_type  embeddings.norm
 *   layer.3.attention   layer.3.attention.{query,key,value,output}  layer.3.attention.residual
 *   layer.3.attention.norm   layer.3.ffn   layer.3.ffn.{up,down}   layer.3.ffn.residual
 *   layer.3.ffn.norm   final.norm   otherwise the node path (fc1, conv1, bn1) or kind.N
 *   decoders ({@link DecoderFinder}): layer.3.mlp.{gate,up,down}  layer.3.{attention,mlp}.norm  lm_head
 * </pre>
 */
public final class ModuleDiscovery {
  private static final Pattern LAYER_HINT = Pattern.compile("(?:^|[./_])(?:layers?|h|blocks?)[._](\\d+)(?:[./_]|$)");

  private final Graph graph;
  private final GraphFacts facts;
  /** Whether a norm feeds the first attention block (ViT, decoders): then no norm is a post-norm. */
  private boolean preNorm;

  private ModuleDiscovery(Graph graph) {
    this.graph = graph;
    this.facts = new GraphFacts(graph);
  }

  public static ImmutableList<Module> discover(Model model) {
    return discover(model.graph());
  }

  /** The modules of {@code g}'s own nodes (not of subgraphs), in topological order. */
  public static ImmutableList<Module> discover(Graph g) {
    return new ModuleDiscovery(g).run();
  }

  /**
   * A graph node that looked like a module of {@code kind} and that discovery refused, with why.
   */
  public record Refused(Node at, ModuleKind kind, String reason) {}

  /**
   * The near misses of the module finders in {@code g}'s own nodes: MatMul, Gemm and Conv nodes
   * that are not linear layers (their weight is not a constant...), decomposed LayerNorms that fail
   * a check. For {@code graft rewrite --explain}.
   */
  public static ImmutableList<Refused> refusedNodes(Graph g) {
    ImmutableList.Builder<Refused> out = ImmutableList.builder();
    for (Node n : g.nodes()) {
      if (LinearFinder.match(n) instanceof MatchResult.NoMatch<LinearModule> no && no.nearMiss()) {
        out.add(new Refused(n, n.is("Conv") ? ModuleKind.CONV : ModuleKind.LINEAR, no.reason()));
      }
      if (n.is("Div") && NormFinder.decomposed(n) instanceof MatchResult.NoMatch<NormModule> no && no.nearMiss()) {
        out.add(new Refused(n, ModuleKind.NORM, "a decomposed LayerNorm, but " + no.describe()));
      }
    }
    return out.build();
  }

  /** The layer number a node name states ({@code /encoder/layer.3/...} gives 3), if any. */
  public static OptionalInt layerHint(Node n) {
    Matcher m = LAYER_HINT.matcher(n.name());
    return m.find() ? OptionalInt.of(Integer.parseInt(m.group(1))) : OptionalInt.empty();
  }

  private ImmutableList<Module> run() {
    List<Node> nodes = graph.nodes();
    List<LinearModule> linears = new ArrayList<>();
    List<NormModule> norms = new ArrayList<>();
    List<EmbeddingModule> embeddings = new ArrayList<>();
    Map<Value, LinearModule> byOutput = new IdentityHashMap<>();
    Map<Value, List<LinearModule>> byInput = new IdentityHashMap<>();
    for (Node n : nodes) {
      LinearFinder.linear(n).ifPresent(l -> {
        linears.add(l);
        byOutput.put(l.output(), l);
        byInput.computeIfAbsent(l.input(), k -> new ArrayList<>()).add(l);
      });
      NormFinder.norm(n).ifPresent(norms::add);
      LinearFinder.embedding(n).ifPresent(embeddings::add);
    }
    DecoderFinder.Found decoder = DecoderFinder.find(facts, nodes, linears);
    embeddings.removeIf(e -> decoder.rotaryLookups().contains(e.gather()));
    for (LinearModule l : decoder.extraLinears()) {
      linears.add(l);
      byOutput.put(l.output(), l);
      byInput.computeIfAbsent(l.input(), k -> new ArrayList<>()).add(l);
    }
    BlockFinder blocks = new BlockFinder(facts, byOutput, byInput);

    // Attention blocks, in order along the stream: their order is the layer index.
    List<AttentionModule> attentions = new ArrayList<>();
    for (Node n : nodes) blocks.attention(n).ifPresent(attentions::add);
    attentions.sort(Comparator.comparingInt(a -> facts.position(a.scoreMatMul())));
    Map<LinearModule, String> linearNames = new IdentityHashMap<>(decoder.linearNames());
    Map<LinearModule, Integer> linearLayers = new IdentityHashMap<>(decoder.linearLayers());
    List<AttentionModule> namedAttentions = new ArrayList<>();
    for (int i = 0; i < attentions.size(); i++) {
      AttentionModule a = attentions.get(i);
      String base = "layer." + i + ".attention";
      put(linearNames, linearLayers, a.query(), base + ".query", i);
      put(linearNames, linearLayers, a.key(), base + ".key", i);
      put(linearNames, linearLayers, a.value(), base + ".value", i);
      put(linearNames, linearLayers, a.output(), base + ".output", i);
      namedAttentions.add(a);
    }

    // Feed-forward blocks: the layer is that of the last attention block before the up projection.
    List<FeedForwardModule> ffns = new ArrayList<>();
    Map<String, Integer> unlayeredFfns = new HashMap<>();
    for (LinearModule up : linears) {
      // Feed-forward is a transformer sublayer; without attention an MLP is just linears.
      if (attentions.isEmpty() || linearNames.containsKey(up)) continue;
      Optional<FeedForwardModule> f = blocks.feedForward(up);
      if (f.isEmpty() || linearNames.containsKey(f.get().down())) continue;
      int layer = layerBefore(attentions, facts.position(up.node()));
      String base;
      if (layer >= 0) {
        base = "layer." + layer + ".ffn";
      } else {
        int k = unlayeredFfns.merge("ffn", 1, Integer::sum) - 1;
        base = "ffn." + k;
      }
      put(linearNames, linearLayers, up, base + ".up", layer);
      put(linearNames, linearLayers, f.get().down(), base + ".down", layer);
      ffns.add(f.get());
    }

    // Residual adds, named after the block whose output the branch carries.
    Map<LinearModule, String> blockOf = new IdentityHashMap<>(decoder.blockOf());
    for (int i = 0; i < attentions.size(); i++) blockOf.put(attentions.get(i).output(), "layer." + i + ".attention");
    for (FeedForwardModule f : ffns) {
      String down = linearNames.get(f.down());
      blockOf.put(f.down(), down.substring(0, down.length() - ".down".length()));
    }
    List<ResidualModule> residuals = new ArrayList<>();
    Set<Node> inBlocks = new HashSet<>();
    for (AttentionModule a : attentions) inBlocks.addAll(a.nodes());
    for (FeedForwardModule f : ffns) inBlocks.addAll(f.nodes());
    for (Node n : nodes) {
      // The mask add of a later layer also adds a value its scores depend on: not a residual.
      if (inBlocks.contains(n)) continue;
      Optional<ResidualModule> r = blocks.residual(n);
      if (r.isEmpty()) continue;
      String block = blocks.branchLinear(r.get()).map(blockOf::get).orElse("");
      residuals.add(r.get().named("", OptionalInt.empty(), block == null ? "" : block));
    }

    Map<Node, String> cnn = CnnFinder.names(facts, linears, norms, residuals);
    // Pre-norm: the first attention reads a norm whose input, not output, is the skip of its residual.
    preNorm = !attentions.isEmpty() && norms.stream().anyMatch(x -> x.output() == attentions.get(0).query().input()
        && residuals.stream().anyMatch(r -> r.block().equals("layer.0.attention") && r.add().input(r.skipIndex()) == x.input()));
    Names names = new Names();
    List<Module> out = new ArrayList<>();
    for (int i = 0; i < namedAttentions.size(); i++) {
      AttentionModule a = namedAttentions.get(i);
      OptionalInt layer = OptionalInt.of(i);
      out.add(
          new AttentionModule(
              names.claim("layer." + i + ".attention"), layer,
              named(a.query(), linearNames, linearLayers), named(a.key(), linearNames, linearLayers),
              named(a.value(), linearNames, linearLayers), named(a.output(), linearNames, linearLayers),
              a.scoreMatMul(), a.softmax(), a.contextMatMul(), a.maskAdd(), a.headSplit(),
              a.headMerge(), a.numHeads(), a.nodes()));
    }
    for (FeedForwardModule f : ffns) {
      LinearModule up = named(f.up(), linearNames, linearLayers);
      String base = up.name().substring(0, up.name().length() - ".up".length());
      out.add(
          new FeedForwardModule(
              names.claim(base), up.layer(), up, named(f.down(), linearNames, linearLayers),
              f.activation(), f.nodes()));
    }
    Map<String, Integer> counters = new HashMap<>();
    for (LinearModule l : linears) {
      if (linearNames.containsKey(l)) {
        out.add(named(l, linearNames, linearLayers));
        names.claim(linearNames.get(l));
      } else {
        String fallback = l.kind() == ModuleKind.CONV ? "conv" : "linear";
        String name = cnn.containsKey(l.node()) ? cnn.get(l.node()) : nameFromNode(l.node(), fallback, counters);
        out.add(l.named(names.claim(name), OptionalInt.empty()));
      }
    }
    for (ResidualModule r : residuals) {
      OptionalInt layer = layerOfBlock(r.block());
      String name = r.block().isEmpty() ? "residual." + counters.merge("residual", 1, Integer::sum) : r.block() + ".residual";
      if (r.block().isEmpty() && cnn.containsKey(r.add())) name = cnn.get(r.add());
      out.add(r.named(names.claim(name), layer, r.block()));
    }
    for (NormModule n : decoder.norms()) out.add(n.named(names.claim(n.name()), n.layer()));
    for (NormModule n : norms) {
      String name = normName(n, namedAttentions, ffns, residuals, embeddings, linearNames);
      if (name == null) name = cnn.get(n.nodes().get(0));
      if (name == null) name = nameFromNode(n.nodes().get(n.nodes().size() - 1), "norm", counters);
      out.add(n.named(names.claim(name), layerOfBlock(name)));
    }
    for (EmbeddingModule e : embeddings) {
      out.add(
          new EmbeddingModule(
              names.claim(embeddingName(e, embeddings)), e.gather(), e.table(), e.indices(),
              e.rows(), e.dim(), e.nodes()));
    }
    out.sort(
        Comparator.<Module>comparingInt(m -> facts.position(m.nodes().get(0)))
            .thenComparingInt(m -> m.kind().ordinal() <= ModuleKind.CONV.ordinal() ? 1 : 0)
            .thenComparing(Module::name));
    return ImmutableList.copyOf(out);
  }

  private static void put(
      Map<LinearModule, String> names, Map<LinearModule, Integer> layers, LinearModule l, String name, int layer) {
    names.put(l, name);
    layers.put(l, layer);
  }

  private static LinearModule named(
      LinearModule l, Map<LinearModule, String> names, Map<LinearModule, Integer> layers) {
    int layer = layers.getOrDefault(l, -1);
    return l.named(names.get(l), layer >= 0 ? OptionalInt.of(layer) : OptionalInt.empty());
  }

  /** The index of the last attention block whose score MatMul comes before {@code position}. */
  private int layerBefore(List<AttentionModule> attentions, int position) {
    int layer = -1;
    for (int i = 0; i < attentions.size(); i++) {
      if (facts.position(attentions.get(i).scoreMatMul()) < position) layer = i;
    }
    return layer;
  }

  private static OptionalInt layerOfBlock(String name) {
    if (!name.startsWith("layer.")) return OptionalInt.empty();
    String rest = name.substring("layer.".length());
    int dot = rest.indexOf('.');
    return OptionalInt.of(Integer.parseInt(dot < 0 ? rest : rest.substring(0, dot)));
  }

  /** The block-relative name of a norm, or null when structure says nothing. */
  private String normName(
      NormModule n,
      List<AttentionModule> attentions,
      List<FeedForwardModule> ffns,
      List<ResidualModule> residuals,
      List<EmbeddingModule> embeddings,
      Map<LinearModule, String> linearNames) {
    Value out = n.output();
    boolean isSkip = residuals.stream().anyMatch(r -> r.add().input(r.skipIndex()) == out);
    // Pre-norm: the norm feeds a block and the skip bypasses it.
    if (!isSkip) {
      for (int i = 0; i < attentions.size(); i++) {
        AttentionModule a = attentions.get(i);
        if (a.query().input() == out || a.key().input() == out || a.value().input() == out) {
          return "layer." + i + ".attention.norm";
        }
      }
      for (FeedForwardModule f : ffns) {
        if (f.up().input() == out) {
          String up = linearNames.get(f.up());
          return up.substring(0, up.length() - ".up".length()) + ".norm";
        }
      }
    }
    // Post-norm: the norm right after a block's residual add.
    for (ResidualModule r : residuals) {
      if (!preNorm && r.add().output() == n.input() && !r.block().isEmpty()) return r.block() + ".norm";
    }
    int pos = facts.position(n.nodes().get(0));
    boolean afterAttention = attentions.stream().anyMatch(a -> facts.position(a.scoreMatMul()) < pos);
    if (!afterAttention && !embeddings.isEmpty()
        && embeddings.stream().anyMatch(e -> facts.dependsOn(n.input(), e.gather().output()))) {
      return "embeddings.norm";
    }
    if (afterAttention && ffns.stream().allMatch(f -> facts.position(f.down().node()) < pos)) {
      return "final.norm";
    }
    return null;
  }

  /**
   * word, token_type or position: structure first (a lookup by a graph input is by token; the
   * largest such table holds words; a lookup by computed ids is by position), node names second.
   */
  private static String embeddingName(EmbeddingModule e, List<EmbeddingModule> all) {
    String hint = e.gather().name().toLowerCase(java.util.Locale.ROOT);
    if (hint.contains("word")) return "embeddings.word";
    if (hint.contains("position")) return "embeddings.position";
    if (hint.contains("token_type") || hint.contains("segment")) return "embeddings.token_type";
    if (e.indices().isGraphInput()) {
      boolean largest = all.stream().filter(x -> x.indices().isGraphInput()).allMatch(x -> x.rows() <= e.rows());
      if (largest) return "embeddings.word";
      String in = e.indices().name().toLowerCase(java.util.Locale.ROOT);
      if (in.contains("type") || in.contains("segment")) return "embeddings.token_type";
      return "embeddings." + e.indices().name().replaceAll("[^A-Za-z0-9_]", "_");
    }
    return "embeddings.position";
  }

  /** The exporter's module path of a node ({@code fc1}, {@code pooler.dense}), or kind.N. */
  private static String nameFromNode(Node n, String kind, Map<String, Integer> counters) {
    String path = GraphFacts.hintPath(n);
    if (!path.isEmpty()) return path;
    return kind + "." + (counters.merge(kind, 1, Integer::sum) - 1);
  }

  /** Hands out names, suffixing _1, _2 when two modules would share one. */
  private static final class Names {
    private final Set<String> used = new HashSet<>();

    String claim(String name) {
      String n = name;
      for (int k = 1; !used.add(n); k++) n = name + "_" + k;
      return n;
    }
  }
}
