package dev.graft.rewrite.peft;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.rewrite.GraftTags;
import dev.graft.rewrite.Splice;
import dev.graft.rewrite.TrainableRegistry.Entry;
import dev.graft.rewrite.discover.AttentionModule;
import dev.graft.rewrite.discover.FeedForwardModule;
import dev.graft.rewrite.discover.Module;
import java.util.List;
import java.util.SplittableRandom;

/**
 * The bottleneck adapter the adapter passes and U-Tuning share: {@code up(act(down(x)))}, a
 * linear down to a small width r, an activation, a linear back up, joined to a frozen value y in
 * one of two forms.
 *
 * <pre>
 *   sequential (Houlsby, Pfeiffer):  y  =>  Add(y, up(act(down(y))))          y = OP(x), U(OP(x))
 *   parallel:                         y  =>  Add(y, Mul(up(act(down(x))), s))  OP(x) + s·U(x)
 *
 *   down(x) = Add(MatMul(x, Wd), bd)   Wd: [width, r], bd: [r]
 *   up(z)   = Add(MatMul(z, Wu), bu)   Wu: [r, width], bu: [width]
 * </pre>
 *
 * The up projection starts at zero (Wu = 0, bu = 0), so a new adapter adds nothing and the
 * adapted model computes what the original did (Houlsby et al.'s near-identity initialisation);
 * Wd starts Kaiming-uniform, bound 1/sqrt(width), from a seed mixed with the module name. GELU is
 * written in its exact Erf form, {@code x·0.5·(1 + erf(x/√2))}, which every opset has (the Gelu op
 * needs opset 20). The final Add is tagged {@value GraftTags#MERGE} and reads y at input 0, so
 * discovery still finds the adapted module's linears and residuals.
 */
public final class BottleneckAdapter {
  private BottleneckAdapter() {}

  /** The adapter's nonlinearity. */
  public enum Activation {
    RELU,
    /** The exact GELU, in the Erf form. */
    GELU
  }

  /** How the up projection starts. */
  public enum Init {
    /** Wu = 0 and bu = 0: the adapter starts as an identity of the adapted model. */
    NEAR_IDENTITY,
    /** Wu random like Wd and bu random: for tests of the formula; not an identity. */
    RANDOM
  }

  /** How the adapter joins the frozen operation: U(OP(x)) or OP(x) + s·U(x). */
  public enum Form {
    SEQUENTIAL,
    PARALLEL
  }

  /**
   * The adapter's hyperparameters.
   *
   * @param size the bottleneck width r; 0 to derive it from the reduction factor
   * @param reductionFactor r = width / reductionFactor, when size is 0
   * @param scale s, the factor of the parallel form (the sequential form ignores it)
   */
  public record Config(int size, int reductionFactor, Activation activation, double scale, Init init, long seed) {
    public Config {
      checkArgument(size >= 0, "Adapter bottleneck size must be positive (or 0 to use the reduction factor), got %s", size);
      checkArgument(
          size > 0 || reductionFactor > 0,
          "Adapter needs a bottleneck size or a positive reduction factor, got size %s and reduction factor %s",
          size,
          reductionFactor);
    }

    /** Reduction factor 16, ReLU, s = 1, near-identity, seed 0 (Pfeiffer et al.'s defaults). */
    public static Config defaults() {
      return new Config(0, 16, Activation.RELU, 1.0, Init.NEAR_IDENTITY, 0);
    }

    public Config withSize(int r) {
      return new Config(r, reductionFactor, activation, scale, init, seed);
    }

    public Config withReductionFactor(int f) {
      return new Config(0, f, activation, scale, init, seed);
    }

    public Config withActivation(Activation a) {
      return new Config(size, reductionFactor, a, scale, init, seed);
    }

    public Config withScale(double s) {
      return new Config(size, reductionFactor, activation, s, init, seed);
    }

    public Config withInit(Init i) {
      return new Config(size, reductionFactor, activation, scale, i, seed);
    }

    public Config withSeed(long s) {
      return new Config(size, reductionFactor, activation, scale, init, s);
    }

    /** The bottleneck width for a stream of {@code width} features. */
    public int bottleneck(long width) {
      if (size > 0) return size;
      checkArgument(
          width >= reductionFactor,
          "Adapter reduction factor %s leaves no bottleneck for width %s. Use a smaller factor or set a size.",
          reductionFactor,
          width);
      return Math.toIntExact(width / reductionFactor);
    }

    /** Wd, bd, Wu, bu: 2·width·r + r + width. */
    public long parameters(long width) {
      long r = bottleneck(width);
      return 2 * width * r + r + width;
    }

    String describe() {
      return (size > 0 ? "r=" + size : "reduction=" + reductionFactor) + "," + activation.name().toLowerCase(java.util.Locale.ROOT);
    }
  }

  /**
   * Adds an adapter to {@code y}: sequential reads y itself, parallel reads {@code x} and scales
   * by the config's s. Every reader of y then reads the adapted value; a graph output keeps its
   * name. Initializers are named {@code <module>.<method>[.<site>].down_weight} and so on.
   *
   * @param site the position within the module when a method adds more than one adapter to it
   *     ("attention", "ffn"), or ""
   * @return the trainable initializers made (roles down_weight, down_bias, up_weight, up_bias)
   */
  public static ImmutableList<Entry> attach(
      Model model, String method, String module, String site, Form form, Value x, Value y, long width, Config config) {
    Graph g = model.graph();
    int r = config.bottleneck(width);
    String base = module + "." + method + (site.isEmpty() ? "" : "." + site);
    SplittableRandom random = new SplittableRandom(config.seed() ^ base.hashCode() * 0x9E3779B97F4A7C15L);
    Value wd = Splice.initializer(g, base + ".down_weight", uniform(random, width, new long[] {width, r}));
    Value bd = Splice.initializer(g, base + ".down_bias", DenseTensor.ofFloats(null, new long[] {r}, new float[r]));
    boolean random0 = config.init() == Init.RANDOM;
    Value wu =
        Splice.initializer(
            g, base + ".up_weight",
            random0 ? uniform(random, r, new long[] {r, width}) : zeros(r, width));
    Value bu = Splice.initializer(g, base + ".up_bias", random0 ? uniform(random, r, new long[] {width}) : zeros(width));

    Value joined = GraftTags.throughMerges(y);
    Value source = form == Form.SEQUENTIAL ? joined : x;
    // After both the value read and the value wrapped exist: the later of their producers.
    Node anchor = later(g, source, joined);
    GraphBuilder b =
        (anchor == null ? Splice.afterProducerOf(joined, g) : Splice.after(anchor))
            .prefix("/graft/" + method + "/" + module + (site.isEmpty() ? "" : "/" + site));
    String role = site.isEmpty() ? "" : site + "_";
    Value down = b.op("Add", b.op("MatMul", source, wd), bd);
    Node downMatMul = b.lastNode().input(0).producer().orElseThrow();
    tagLast2(b, method, module, role + "down");
    Value act = activation(b, down, config.activation());
    tagAll(b, method, module, role + "act", act, down);
    Value up = b.op("Add", b.op("MatMul", act, wu), bu);
    tagLast2(b, method, module, role + "up");
    Value delta = up;
    if (form == Form.PARALLEL) {
      delta = b.op("Mul", up, b.scalar((float) config.scale()));
      GraftTags.tag(b.lastNode(), method, module, role + "scale");
    }
    b.op("Add", joined, delta);
    Node merge = GraftTags.tag(b.lastNode(), method, module, GraftTags.MERGE);
    Splice.wrap(joined, merge);
    // The sequential adapter reads y itself, not its own output: undo that one rewiring.
    if (downMatMul.input(0) != source) downMatMul.setInput(0, source);
    return ImmutableList.of(
        new Entry(wd.name(), method, module, role + "down_weight"),
        new Entry(bd.name(), method, module, role + "down_bias"),
        new Entry(wu.name(), method, module, role + "up_weight"),
        new Entry(bu.name(), method, module, role + "up_bias"));
  }

  /** The activation an attention or feed-forward block reads (the stream entering it). */
  static Value blockInput(Module m) {
    if (m instanceof AttentionModule a) return a.query().input();
    if (m instanceof FeedForwardModule f) return f.up().input();
    throw new IllegalArgumentException("An adapter attaches to attention or feed-forward blocks, not " + m.kind() + " '" + m.name() + "'");
  }

  /** The block's result before the residual add: the output projection's value after its bias. */
  static Value blockOutput(Module m) {
    if (m instanceof AttentionModule a) return a.output().output();
    if (m instanceof FeedForwardModule f) return f.down().output();
    throw new IllegalArgumentException("An adapter attaches to attention or feed-forward blocks, not " + m.kind() + " '" + m.name() + "'");
  }

  /** The width of the block's output. */
  static long blockWidth(Module m) {
    if (m instanceof AttentionModule a) return a.output().outFeatures();
    if (m instanceof FeedForwardModule f) return f.down().outFeatures();
    throw new IllegalArgumentException("An adapter attaches to attention or feed-forward blocks, not " + m.kind() + " '" + m.name() + "'");
  }

  /** The attention and feed-forward blocks among {@code modules}, in order. */
  static List<Module> blocks(ImmutableList<Module> modules, boolean attention, boolean ffn) {
    return modules.stream()
        .filter(m -> (attention && m instanceof AttentionModule) || (ffn && m instanceof FeedForwardModule))
        .toList();
  }

  /** ReLU, or GELU as x·0.5·(1 + erf(x/√2)). */
  static Value activation(GraphBuilder b, Value x, Activation a) {
    if (a == Activation.RELU) return b.op("Relu", x);
    Value erf = b.op("Erf", b.op("Div", x, b.scalar((float) Math.sqrt(2))));
    return b.op("Mul", b.op("Mul", x, b.op("Add", erf, b.scalar(1f))), b.scalar(0.5f));
  }

  /** The producer of a or b that comes later in the graph's stored order; null if neither has one. */
  private static Node later(Graph g, Value a, Value b) {
    Node pa = a.producer().orElse(null);
    Node pb = b.producer().orElse(null);
    if (pa == null) return pb;
    if (pb == null) return pa;
    var nodes = g.nodes();
    return nodes.indexOf(pa) > nodes.indexOf(pb) ? pa : pb;
  }

  /** Tags the MatMul and Add the builder just made. */
  private static void tagLast2(GraphBuilder b, String method, String module, String role) {
    Node add = b.lastNode();
    GraftTags.tag(add, method, module, role);
    GraftTags.tag(add.input(0).producer().orElseThrow(), method, module, role);
  }

  /** Tags the nodes between {@code from} (exclusive) and {@code to}: the activation's nodes. */
  private static void tagAll(GraphBuilder b, String method, String module, String role, Value to, Value from) {
    java.util.ArrayDeque<Value> todo = new java.util.ArrayDeque<>();
    todo.add(to);
    while (!todo.isEmpty()) {
      Value v = todo.pop();
      if (v == from || v.producer().isEmpty()) continue;
      Node n = v.producer().get();
      if (GraftTags.isGraft(n)) continue;
      GraftTags.tag(n, method, module, role);
      for (Value in : n.inputs()) if (in != null) todo.push(in);
    }
  }

  private static DenseTensor uniform(SplittableRandom random, long fanIn, long[] dims) {
    long n = 1;
    for (long d : dims) n *= d;
    float[] v = new float[Math.toIntExact(n)];
    double bound = 1 / Math.sqrt(fanIn);
    for (int i = 0; i < v.length; i++) v[i] = (float) random.nextDouble(-bound, bound);
    return DenseTensor.ofFloats(null, dims, v);
  }

  private static DenseTensor zeros(long... dims) {
    long n = 1;
    for (long d : dims) n *= d;
    return DenseTensor.ofFloats(null, dims, new float[Math.toIntExact(n)]);
  }
}
