package dev.graft.rewrite.peft;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.rewrite.ConfiguredPass;
import dev.graft.rewrite.GraftTags;
import dev.graft.rewrite.Splice;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry.Entry;
import dev.graft.rewrite.discover.LinearModule;
import dev.graft.rewrite.discover.Module;
import dev.graft.rewrite.discover.ModuleKind;
import dev.graft.rewrite.recipe.PassOptions;
import java.util.List;
import java.util.SplittableRandom;

/**
 * LoRA (Hu et al. 2021): a low-rank update beside a frozen linear layer.
 *
 * <pre>
 *   y = MatMul(x, W)  =>  y = Add(MatMul(x, W), Mul(MatMul(MatMul(x, A), B), s))
 *
 *   x ──MatMul(W)──────────────┐
 *   │                          Add ──(bias Add, unchanged)── readers
 *   └─(Dropout)─MatMul(A)─MatMul(B)─Mul(s)┘
 * </pre>
 *
 * A is [in, r], B is [r, out], s = alpha / r (or alpha / sqrt(r) with rsLoRA). The update goes in
 * before the bias Add, so the bias stays as it is and the exporter folds {@code W + s·A·B}
 * exactly. B starts at zero, so the adapted model computes what the original did; A starts
 * Kaiming-uniform (PyTorch's default for nn.Linear, bound 1/sqrt(in)) or Gaussian (std 1/r), from
 * a seed mixed with the module name, so each module gets its own reproducible draw. With {@code
 * init: pissa} or {@code olora} A and B instead start from the weight's SVD or QR decomposition
 * and the frozen weight keeps the residual W - s·A·B ({@link LoraWeightInit}). Dropout on x
 * is an identity at inference; the training graph turns it on. Gemm linears get the same branch
 * added to their output. Conv layers are not adapted yet.
 */
public final class LoraPass extends ConfiguredPass<LinearModule, LoraPass.Config> {
  public static final String METHOD = "lora";

  /** The recipe options of LoRA, and of Conv-LoRA, which reads them the same way ({@link Config#read}). */
  public static final List<String> OPTIONS = List.of("rank", "alpha", "rslora", "dropout", "init", "seed");

  /**
   * How A and B start: B at zero and A at random, or both from the frozen weight, which then keeps
   * the residual (PiSSA from its SVD, OLoRA from its QR decomposition: {@link LoraWeightInit}).
   */
  public enum Init {
    KAIMING_UNIFORM,
    GAUSSIAN,
    PISSA,
    OLORA;

    /** Whether A and B come from the weight, which then holds the residual W - s·A·B. */
    public boolean fromWeight() {
      return this == PISSA || this == OLORA;
    }
  }

  /**
   * LoRA's hyperparameters.
   *
   * @param rsLora scale by alpha / sqrt(r) (rank-stabilised LoRA) instead of alpha / r
   */
  public record Config(int rank, double alpha, boolean rsLora, double dropout, Init init, long seed) implements LowRank {
    public Config {
      checkArgument(rank > 0, "LoRA rank must be positive, got %s", rank);
      checkArgument(dropout >= 0 && dropout < 1, "LoRA dropout must be in [0, 1), got %s", dropout);
    }

    /** r = 8, alpha = 16, no dropout, Kaiming-uniform A, seed 0. */
    public static Config defaults() {
      return new Config(8, 16, false, 0, Init.KAIMING_UNIFORM, 0);
    }

    public Config withRank(int r) {
      return new Config(r, alpha, rsLora, dropout, init, seed);
    }

    public Config withAlpha(double a) {
      return new Config(rank, a, rsLora, dropout, init, seed);
    }

    public Config withRsLora(boolean rs) {
      return new Config(rank, alpha, rs, dropout, init, seed);
    }

    public Config withDropout(double p) {
      return new Config(rank, alpha, rsLora, p, init, seed);
    }

    public Config withInit(Init i) {
      return new Config(rank, alpha, rsLora, dropout, i, seed);
    }

    public Config withSeed(long s) {
      return new Config(rank, alpha, rsLora, dropout, init, s);
    }

    /** The {@link #OPTIONS} of a recipe entry, each defaulting to {@link #defaults()}. */
    public static Config read(PassOptions o) {
      Config d = defaults();
      return new Config(
          o.integer("rank", d.rank()),
          o.number("alpha", d.alpha()),
          o.bool("rslora", d.rsLora()),
          o.number("dropout", d.dropout()),
          o.choice("init", Init.class, d.init()),
          o.longInteger("seed", d.seed()));
    }

    /** alpha / r, or alpha / sqrt(r) with rsLoRA. */
    public double scaling() {
      return rsLora ? alpha / Math.sqrt(rank) : alpha / rank;
    }
  }

  public LoraPass(Targets targets, Config config) {
    super(METHOD, targets, config);
  }

  @Override
  protected List<LinearModule> candidates(ImmutableList<Module> modules) {
    return modules.stream()
        .filter(m -> m instanceof LinearModule l && l.kind() == ModuleKind.LINEAR)
        .map(m -> (LinearModule) m)
        .toList();
  }

  @Override
  protected String kindDescription() {
    return "linear";
  }

  @Override
  protected long parameters(LinearModule t) {
    return (long) config.rank() * (t.inFeatures() + t.outFeatures());
  }

  @Override
  protected List<Entry> apply(Model model, LinearModule t) {
    Graph g = model.graph();
    int r = config.rank();
    long in = t.inFeatures();
    long out = t.outFeatures();
    String module = t.name();
    float[] a;
    float[] bValues;
    if (config.init().fromWeight()) {
      LoraWeightInit.Factors f = fromWeight(g, t);
      a = f.a();
      bValues = f.b();
    } else {
      SplittableRandom random = new SplittableRandom(config.seed() ^ module.hashCode() * 0x9E3779B97F4A7C15L);
      a = new float[Math.toIntExact(in * r)];
      double bound = 1 / Math.sqrt(in);
      for (int i = 0; i < a.length; i++) {
        a[i] =
            (float)
                (config.init() == Init.KAIMING_UNIFORM
                    ? random.nextDouble(-bound, bound)
                    : random.nextGaussian() / r);
      }
      bValues = new float[Math.toIntExact(r * out)];
    }
    Value aInit = Splice.initializer(g, module + ".lora_A", DenseTensor.ofFloats(null, new long[] {in, r}, a));
    Value bInit = Splice.initializer(g, module + ".lora_B", DenseTensor.ofFloats(null, new long[] {r, out}, bValues));
    Value scale = Splice.initializer(g, module + ".lora_scaling", DenseTensor.scalar(null, (float) config.scaling()));

    // The value the update joins: the linear's result before its bias, behind earlier merges.
    Value wrapped = GraftTags.throughMerges(t.node().output());
    GraphBuilder b = Splice.after(wrapped.producer().orElseThrow()).prefix("/graft/lora/" + module);
    Value x = t.input();
    if (config.dropout() > 0) {
      x = Splice.dropout(b, model, x, (float) config.dropout());
      tag(b.lastNode(), module, "dropout");
    }
    Value xa = b.op("MatMul", x, aInit);
    tag(b.lastNode(), module, "A");
    Value xab = b.op("MatMul", xa, bInit);
    tag(b.lastNode(), module, "B");
    Value delta = b.op("Mul", xab, scale);
    tag(b.lastNode(), module, "scale");
    b.op("Add", wrapped, delta);
    Node merge = tag(b.lastNode(), module, GraftTags.MERGE);
    Splice.wrap(wrapped, merge);
    return List.of(
        new Entry(aInit.name(), METHOD, module, "A"), new Entry(bInit.name(), METHOD, module, "B"));
  }

  /**
   * PiSSA's or OLoRA's A and B for {@code t}; the frozen weight takes the residual W - s·A·B in
   * place (keeping its name), so the layer's output is unchanged.
   */
  private LoraWeightInit.Factors fromWeight(Graph g, LinearModule t) {
    Value w = t.weight();
    String method = config.init().name().toLowerCase(java.util.Locale.ROOT);
    checkArgument(
        w.isInitializer() && GraftTags.origin(w) == w,
        "LoRA init %s changes the weight of '%s' to its residual, but that weight is %s. Use init"
            + " kaiming-uniform or gaussian for it, or apply %s before other methods that wrap the weight.",
        method, t.name(), w.isInitializer() ? "wrapped by another method" : "not an initializer", method);
    for (dev.graft.ir.Use u : w.uses()) {
      checkArgument(
          u.node() == t.node(),
          "LoRA init %s changes the weight '%s' of '%s' to its residual, but node '%s' reads that weight too"
              + " (a tied weight). Use init kaiming-uniform or gaussian, or leave '%s' out of the targets.",
          method, w.name(), t.name(), u.node().displayName(), t.name());
    }
    int in = Math.toIntExact(t.inFeatures());
    int out = Math.toIntExact(t.outFeatures());
    float[] stored = w.initializer().get().toFloatArray();
    // Gemm with transB stores W as [out, in]; the factors are for the [in, out] layout.
    boolean transposed = t.node().is("Gemm") && t.node().attrLong("transB", 0) != 0;
    float[] weight = transposed ? transpose(stored, out, in) : stored;
    LoraWeightInit.Factors f =
        config.init() == Init.PISSA
            ? LoraWeightInit.pissa(weight, in, out, config.rank(), config.scaling())
            : LoraWeightInit.olora(weight, in, out, config.rank(), config.scaling());
    float[] residual = transposed ? transpose(f.residual(), in, out) : f.residual();
    g.setInitializer(w, DenseTensor.ofFloats(w.name(), w.initializer().get().dims(), residual));
    return f;
  }

  private static float[] transpose(float[] m, int rows, int cols) {
    float[] t = new float[m.length];
    for (int i = 0; i < rows; i++) {
      for (int j = 0; j < cols; j++) t[j * rows + i] = m[i * cols + j];
    }
    return t;
  }

  private static Node tag(Node n, String module, String role) {
    return GraftTags.tag(n, METHOD, module, role);
  }
}
