package dev.graft.rewrite.peft;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMultiset;
import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.ir.Node;
import dev.graft.ir.Use;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.rewrite.ConfiguredPlannedPass;
import dev.graft.rewrite.GraftTags;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.Splice;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.TrainableRegistry.Entry;
import dev.graft.rewrite.discover.AttentionModule;
import dev.graft.rewrite.discover.Module;
import dev.graft.rewrite.discover.ModuleDiscovery;
import dev.graft.rewrite.discover.NormModule;
import dev.graft.rewrite.discover.ResidualModule;
import dev.graft.rewrite.method.Fold;
import dev.graft.rewrite.method.PeftMethod;
import dev.graft.rewrite.recipe.PassFactory;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.stream.Collectors;

/**
 * Conditional adapters (CoDA; Lei et al., "Conditional Adapters: Parameter-efficient Transfer
 * Learning with Fast Inference", NeurIPS 2023) on the layers of a BERT-like encoder. Each adapted
 * layer L (attention and feed-forward with their residuals and norms, x its input stream, L(x) its
 * output stream) becomes a light path over every token plus the frozen layer on the k tokens a
 * router picks:
 *
 * <pre>
 *   y = L(x)   =>   y = x + A(x) + λ ⊙ (L(x) - x)
 *
 *   A(x)  = Add(MatMul(Relu(Add(MatMul(x, Wd), bd)), Wu), bu)      the light parallel adapter, Wu = bu = 0 at start
 *   s     = Squeeze(MatMul(x, Wr), -1)                             the router's score per token   [batch, n]
 *   k     = min(n, max(min-tokens, ceil(fraction · n)))            n = the padded sequence length
 *   λ     = CodaSoftTopK(s, attention_mask, k)                     soft top-k weights in [0, 1], 0 at padding
 * </pre>
 *
 * written as {@code Add(L(x), A(x) + (λ - 1)·(L(x) - x))} so the last Add reads L(x) at input 0
 * and is tagged as a merge (discovery still sees the layer). What runs on how many tokens:
 * <ul>
 *   <li><b>Training ({@link Form#SOFT}, the default):</b> the frozen layer runs densely on all n
 *       tokens and its contribution is weighted by the soft λ, so every token's router score gets
 *       a gradient. Training therefore costs what the base costs, plus the adapter and the router.
 *   <li><b>The hard check ({@link Form#HARD}):</b> still dense, but the weight is the 0/1
 *       indicator of {@code TopK(Where(mask, s, -inf), k)} (times λ with {@code export-weights:
 *       lambda}): the function the export computes. The pass's own HARD form keeps λ.
 *   <li><b>Inference ({@link Form#SPARSE}, what {@link CodaSparseForm} makes of a trained model):</b>
 *       TopK picks k tokens per row, GatherElements takes their rows, a copy of the layer runs on
 *       those k rows only, and ScatterElements puts {@code w·(L(x_sel) - x_sel)} back (w = 1, or
 *       λ with {@code export-weights: lambda}, see {@link ExportWeights}); the other
 *       n - k tokens get only {@code x + A(x)}.
 * </ul>
 *
 * <p><b>Conditional attention.</b> The selected tokens are the queries; keys and values are
 * projected from all n tokens of x (with the model's own attention mask), so attention costs
 * k·n instead of n·n and the query, output and feed-forward projections run on k rows; the key
 * and value projections still run on n rows. This keeps the sparse form exactly equal to the
 * hard dense form (a query row of attention does not depend on the other query rows), which is
 * what the export verifies. (The paper also routes keys and values for very long inputs; that
 * would make the two forms differ and is left out.)
 *
 * <p><b>Not an identity at the start.</b> The adapter adds zero, but λ < 1 scales the frozen
 * layer down, and with k < n some tokens skip it: the model starts away from the base. The
 * paper's remedy is a light distillation phase (see {@code CodaDistillation} in the trainer), in
 * which the CoDA model learns to reproduce the dense model's hidden states. With k = n the soft
 * top-k tends to λ = 1 and the model to the base.
 *
 * <p>Targets are layer names, {@code layer.N} (default: every layer). Trainables, per layer:
 * {@code layer.N.coda.router_weight} [width, 1], {@code down_weight}, {@code down_bias},
 * {@code up_weight}, {@code up_bias}. The values the sparse form needs are recorded per layer in
 * the model's metadata ({@link CodaLayers}).
 */
public final class CodaPass extends ConfiguredPlannedPass<CodaPass.Config> {
  public static final String METHOD = "coda";

  /** Which computation the pass emits; see the class comment. */
  public enum Form {
    SOFT,
    HARD,
    SPARSE
  }

  /**
   * How the export weighs a routed token's frozen-layer output. {@link #ONE}: by 1, the hard
   * top-k alone (the soft top-k's iterations are not in the export at all; λ, a training device,
   * is dropped, so the export differs from the soft-trained model by (1 - λ) at the selected
   * tokens: measure it with graft eval). {@link #LAMBDA}: by the soft top-k's λ, the trained
   * model's exact weight (its iterations then run on all n scores in the export).
   */
  public enum ExportWeights {
    ONE,
    LAMBDA
  }

  /** The metadata key recording the model's {@link ExportWeights} (absent: {@link ExportWeights#ONE}). */
  public static final String EXPORT_WEIGHTS_KEY = "graft.coda.export-weights";

  /**
   * CoDA's hyperparameters.
   *
   * @param fraction k as a fraction of the (padded) sequence length, in (0, 1]
   * @param minTokens the least k (clipped to the sequence length)
   * @param size the adapter's bottleneck width r
   * @param temperature ε of the soft top-k
   * @param iterations the soft top-k's normalisation iterations
   * @param maskInput the graph input with the attention mask (1 = token, 0 = padding); "" or an
   *     absent input: every position is a token
   * @param exportWeights how the export weighs the routed tokens' frozen-layer output
   */
  public record Config(
      double fraction, int minTokens, int size, double temperature, int iterations, Form form, String maskInput, long seed, ExportWeights exportWeights) {
    public Config {
      checkArgument(fraction > 0 && fraction <= 1, "CoDA's fraction must be in (0, 1] (k = fraction · n), got %s", fraction);
      checkArgument(minTokens >= 1, "CoDA's min-tokens must be at least 1, got %s", minTokens);
      checkArgument(size >= 1, "CoDA's adapter size must be at least 1, got %s", size);
      checkArgument(temperature > 0, "CoDA's temperature must be positive, got %s", temperature);
      checkArgument(iterations >= 1, "CoDA's iterations must be at least 1, got %s", iterations);
    }

    /** k = n/3 (at least 4), r = 32, ε = 0.2, 20 iterations, the soft (training) form. */
    public static Config defaults() {
      return new Config(1.0 / 3, 4, 32, 0.2, 20, Form.SOFT, "attention_mask", 0, ExportWeights.ONE);
    }

    public Config withFraction(double f) {
      return new Config(f, minTokens, size, temperature, iterations, form, maskInput, seed, exportWeights);
    }

    public Config withForm(Form f) {
      return new Config(fraction, minTokens, size, temperature, iterations, f, maskInput, seed, exportWeights);
    }

    public Config withMinTokens(int m) {
      return new Config(fraction, m, size, temperature, iterations, form, maskInput, seed, exportWeights);
    }

    public Config withExportWeights(ExportWeights w) {
      return new Config(fraction, minTokens, size, temperature, iterations, form, maskInput, seed, w);
    }

    /** Router d + adapter 2·d·r + r + d. */
    public long parameters(long width) {
      return width + 2 * width * size + size + width;
    }

    String describe() {
      return "k=" + fraction + "n,min=" + minTokens + ",r=" + size + ",eps=" + temperature + ",T=" + iterations + ","
          + form.name().toLowerCase(java.util.Locale.ROOT);
    }
  }

  /**
   * The method, registered once in {@code Methods}: its options and pass, and what a merged export
   * does with it (keeps it: the router picks tokens at run time; {@code CodaExport} writes the
   * layers in their sparse form).
   */
  public static final PeftMethod DEFINITION =
      PeftMethod.of(METHOD, recipeFactory(), Fold.kept("the router picks tokens at run time; the export makes each layer sparse"));

  /** The recipe entry: {@code method: coda} with its options. */
  public static PassFactory recipeFactory() {
    return PassFactory.targeted(
        "CoDA conditional adapters: a light adapter on every token, the frozen layer on the k tokens a router picks",
        "layer.*",
        List.of("fraction", "min-tokens", "size", "temperature", "iterations", "form", "mask-input", "seed", "export-weights"),
        o -> {
          Config d = Config.defaults();
          return new CodaPass(
              o.targets(),
              new Config(
                  o.number("fraction", d.fraction()),
                  o.integer("min-tokens", d.minTokens()),
                  o.integer("size", d.size()),
                  o.number("temperature", d.temperature()),
                  o.integer("iterations", d.iterations()),
                  o.choice("form", Form.class, d.form()),
                  o.string("mask-input", d.maskInput()),
                  o.longInteger("seed", d.seed()),
                  o.choice("export-weights", ExportWeights.class, d.exportWeights())));
        });
  }

  /** One layer: its name, the stream in and out, its attention block. */
  record Site(String name, int layer, Value input, Value output, AttentionModule attention, long width) {}

  private final Targets targets;

  public CodaPass(Targets targets, Config config) {
    super(METHOD, config);
    this.targets = targets;
  }

  @Override
  public PassResult execute(Model model, boolean dry) {
    WorkingModels.requireWorkingOpset(model, "Pass '" + METHOD + "'");
    ImmutableList<Module> modules = ModuleDiscovery.discover(model);
    List<Site> selected = select(sites(modules));
    Set<String> done = TrainableRegistry.modulesOf(model, METHOD);
    ImmutableMultiset.Builder<String> changes = ImmutableMultiset.builder();
    ImmutableList.Builder<String> notes = ImmutableList.builder();
    List<Entry> entries = new ArrayList<>();
    List<CodaLayers.Layer> layers = new ArrayList<>();
    long params = 0;
    for (Site s : selected) {
      if (done.contains(s.name())) {
        notes.add(s.name() + ": already has " + METHOD);
        continue;
      }
      params += config.parameters(s.width());
      changes.add(METHOD + "(" + config.describe() + ") " + s.name());
      if (dry) continue;
      layers.add(attach(model, s, entries));
    }
    if (!entries.isEmpty()) {
      TrainableRegistry.add(model, entries);
      CodaLayers.add(model, layers);
      model.putMetadata(EXPORT_WEIGHTS_KEY, config.exportWeights().name().toLowerCase(java.util.Locale.ROOT));
      if (config.form() == Form.SPARSE) CodaSparseForm.apply(model);
    }
    return new PassResult(METHOD, changes.build(), params, dry, notes.build());
  }

  /** Emits the dense (soft or hard) CoDA layer around {@code s}; returns what the sparse form needs. */
  private CodaLayers.Layer attach(Model model, Site s, List<Entry> entries) {
    Graph g = model.graph();
    long opset = Splice.opset(model);
    // The previous layer may be a CoDA layer already: its output is the merge that wraps x.
    Value x = GraftTags.throughMerges(s.input());
    Value y = GraftTags.throughMerges(s.output());
    String base = s.name() + "." + METHOD;
    long d = s.width();
    int r = config.size();
    SplittableRandom random = new SplittableRandom(config.seed() ^ base.hashCode() * 0x9E3779B97F4A7C15L);
    Value wr = Splice.initializer(g, base + ".router_weight", uniform(random, d, new long[] {d, 1}));
    Value wd = Splice.initializer(g, base + ".down_weight", uniform(random, d, new long[] {d, r}));
    Value bd = Splice.initializer(g, base + ".down_bias", DenseTensor.ofFloats(null, new long[] {r}, new float[r]));
    Value wu = Splice.initializer(g, base + ".up_weight", DenseTensor.ofFloats(null, new long[] {r, d}, new float[r * (int) d]));
    Value bu = Splice.initializer(g, base + ".up_bias", DenseTensor.ofFloats(null, new long[] {d}, new float[(int) d]));
    entries.add(new Entry(wr.name(), METHOD, s.name(), "router_weight"));
    entries.add(new Entry(wd.name(), METHOD, s.name(), "down_weight"));
    entries.add(new Entry(bd.name(), METHOD, s.name(), "down_bias"));
    entries.add(new Entry(wu.name(), METHOD, s.name(), "up_weight"));
    entries.add(new Entry(bu.name(), METHOD, s.name(), "up_bias"));

    int before = g.nodeCount();
    // The builder inserts right after y's producer: the new nodes are the ones from there on.
    int start = y.producer().map(p -> g.nodes().indexOf(p) + 1).orElse(0);
    GraphBuilder b = Splice.afterProducerOf(y, g).prefix("/graft/" + METHOD + "/" + s.name());
    Value valid = validMask(b, g);
    // k from the padded length n: ceil(fraction·n), at least min-tokens, at most n.
    Value n = b.op("Gather", List.of(b.op("Shape", x), b.scalar(1L)), Attr.of("axis", 0L));
    Value nf = b.op("Cast", List.of(n), Attr.of("to", (long) DataType.FLOAT.code()));
    // In float: Max and Min take int64 only from opset 12.
    Value kc = b.op("Ceil", b.op("Mul", nf, b.scalar((float) config.fraction())));
    Value kf = b.op("Min", b.op("Max", kc, b.scalar((float) config.minTokens())), nf);
    Value k = b.op("Cast", List.of(kf), Attr.of("to", (long) DataType.INT64.code()));
    // Reshape rather than Squeeze/Unsqueeze, whose axes moved to an input at opset 13.
    Value scores = b.op("Reshape", b.op("MatMul", x, wr), b.int64s(0, -1));
    Value lambda = CodaSoftTopK.build(b, scores, valid, kf, config.temperature(), config.iterations(), opset);
    Value weight = lambda;
    if (config.form() != Form.SOFT) weight = b.op("Mul", lambda, hardMask(b, scores, valid, k, lambda));
    Value light = b.op("Add", b.op("MatMul", b.op("Relu", b.op("Add", b.op("MatMul", x, wd), bd)), wu), bu);
    Value heavy = b.op("Sub", y, x);
    Value w1 = b.op("Reshape", b.op("Sub", weight, b.scalar(1f)), b.int64s(0, 0, 1));
    Value correction = b.op("Add", light, b.op("Mul", heavy, w1));
    b.op("Add", y, correction);
    Node merge = b.lastNode();
    Set<Node> made = new HashSet<>(g.nodes().subList(start, start + g.nodeCount() - before));
    for (Node m : made) GraftTags.tag(m, METHOD, s.name(), m == merge ? GraftTags.MERGE : "coda");
    // The readers of y (the next layer, a head, the graph output) read the CoDA layer instead.
    for (Use u : y.uses()) {
      if (!made.contains(u.node())) u.node().setInput(u.index(), merge.output());
    }
    if (y.isGraphOutput()) {
      int i = g.outputs().indexOf(y);
      String name = y.name();
      g.rename(y, g.freshName(name + "_inner"));
      g.rename(merge.output(), name);
      merge.output().setType(y.type());
      g.setOutput(i, merge.output());
    }
    return new CodaLayers.Layer(
        s.name(),
        x.name(),
        y.name(),
        merge.output().name(),
        light.name(),
        scores.name(),
        valid == null ? "" : valid.name(),
        lambda.name(),
        k.name(),
        keyValueRegion(s.attention()));
  }

  /** The attention mask input as bool [batch, n], or null when the model has none. */
  private Value validMask(GraphBuilder b, Graph g) {
    if (config.maskInput().isEmpty()) return null;
    Value mask = g.inputs().stream().filter(v -> v.name().equals(config.maskInput())).findFirst().orElse(null);
    if (mask == null) return null;
    return b.op("Cast", List.of(mask), Attr.of("to", (long) DataType.BOOL.code()));
  }

  /** The 0/1 indicator [batch, n] of the hard top-k of the scores, padding at -inf. */
  static Value hardMask(GraphBuilder b, Value scores, Value valid, Value k, Value like) {
    Value idx = topK(b, scores, valid, k);
    Value zeros = b.op("ConstantOfShape", List.of(b.op("Shape", like)), Attr.of("value", DenseTensor.ofFloats(null, new long[] {1}, 0f)));
    Value ones = b.op("ConstantOfShape", List.of(b.op("Shape", idx)), Attr.of("value", DenseTensor.ofFloats(null, new long[] {1}, 1f)));
    return b.op("ScatterElements", List.of(zeros, idx, ones), Attr.of("axis", 1L));
  }

  /** The indices [batch, k] of the k highest scores per row; padding (valid false) scores -inf. */
  static Value topK(GraphBuilder b, Value scores, Value valid, Value k) {
    Value masked = valid == null ? scores : b.op("Where", valid, scores, b.scalar(Float.NEGATIVE_INFINITY));
    return b.ops("TopK", 2, List.of(masked, b.op("Reshape", k, b.int64s(1))), Attr.of("axis", 1L)).get(1);
  }

  /**
   * The nodes of the key and value projections and what follows them up to the attention
   * matmuls (bias, head split, transposes): in the sparse form they keep reading all n tokens.
   */
  private static ImmutableList<String> keyValueRegion(AttentionModule a) {
    Set<Node> stop = Set.of(a.scoreMatMul(), a.contextMatMul());
    Set<Node> region = new java.util.LinkedHashSet<>();
    java.util.ArrayDeque<Node> todo = new java.util.ArrayDeque<>();
    todo.addAll(a.key().nodes());
    todo.addAll(a.value().nodes());
    while (!todo.isEmpty()) {
      Node n = todo.pop();
      if (stop.contains(n) || !region.add(n)) continue;
      for (Value out : n.outputs()) {
        if (out == null) continue;
        for (Use u : out.uses()) todo.push(u.node());
      }
    }
    for (Node n : region) {
      checkArgument(
          !n.name().isEmpty(),
          "%s: node %s of %s's key/value path has no name; the sparse form finds nodes by name. Name the graph's nodes first.",
          METHOD, n.displayName(), a.name());
    }
    return region.stream().map(Node::name).collect(ImmutableList.toImmutableList());
  }

  /** The layers, named as targets name them: input stream, output stream (after a post-norm). */
  private static List<Site> sites(List<Module> modules) {
    Map<String, Module> byName = new LinkedHashMap<>();
    for (Module m : modules) byName.put(m.name(), m);
    List<Site> out = new ArrayList<>();
    for (Module m : modules) {
      if (!(m instanceof AttentionModule a) || a.layer().isEmpty()) continue;
      String layer = "layer." + a.layer().getAsInt();
      Value in = byName.get(layer + ".attention.residual") instanceof ResidualModule r ? r.add().input(r.skipIndex()) : null;
      Value outValue = null;
      if (byName.get(layer + ".ffn.residual") instanceof ResidualModule r) {
        outValue = r.add().output();
        if (byName.get(layer + ".ffn.norm") instanceof NormModule nm && nm.input() == outValue) outValue = nm.output();
      }
      if (in == null || outValue == null) continue;
      out.add(new Site(layer, a.layer().getAsInt(), in, outValue, a, a.query().inFeatures()));
    }
    return out;
  }

  private List<Site> select(List<Site> sites) {
    List<Site> hits = new ArrayList<>();
    boolean allLayers = targets.fromLayer() == Integer.MIN_VALUE && targets.toLayer() == Integer.MAX_VALUE;
    for (Site s : sites) {
      if (!targets.pattern().matcher(s.name()).matches()) continue;
      if (allLayers || (s.layer() >= targets.fromLayer() && s.layer() <= targets.toLayer())) hits.add(s);
    }
    if (hits.isEmpty()) {
      throw new IllegalArgumentException(
          METHOD + ": target '" + targets.describe() + "' matches no transformer layer. "
              + (sites.isEmpty()
                  ? "The model has no layer with attention, feed-forward and residuals that CoDA can route around."
                  : "The layers are: " + sites.stream().map(Site::name).collect(Collectors.joining(", ")) + "."));
    }
    return hits;
  }

  private static DenseTensor uniform(SplittableRandom random, long fanIn, long[] dims) {
    long count = 1;
    for (long dim : dims) count *= dim;
    float[] v = new float[Math.toIntExact(count)];
    double bound = 1 / Math.sqrt(fanIn);
    for (int i = 0; i < v.length; i++) v[i] = (float) random.nextDouble(-bound, bound);
    return DenseTensor.ofFloats(null, dims, v);
  }
}
