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
import dev.graft.rewrite.ModulePass;
import dev.graft.rewrite.Splice;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry.Entry;
import dev.graft.rewrite.discover.LinearModule;
import dev.graft.rewrite.discover.Module;
import dev.graft.rewrite.discover.ModuleKind;
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
 * a seed mixed with the module name, so each module gets its own reproducible draw. Dropout on x
 * is an identity at inference; the training graph turns it on. Gemm linears get the same branch
 * added to their output. Conv layers are not adapted yet.
 */
public final class LoraPass extends ModulePass<LinearModule> {
  public static final String METHOD = "lora";

  /** How A starts; B always starts at zero. */
  public enum Init {
    KAIMING_UNIFORM,
    GAUSSIAN
  }

  /**
   * LoRA's hyperparameters.
   *
   * @param rsLora scale by alpha / sqrt(r) (rank-stabilised LoRA) instead of alpha / r
   */
  public record Config(int rank, double alpha, boolean rsLora, double dropout, Init init, long seed) {
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

    /** alpha / r, or alpha / sqrt(r) with rsLoRA. */
    public double scaling() {
      return rsLora ? alpha / Math.sqrt(rank) : alpha / rank;
    }
  }

  private final Config config;

  public LoraPass(Targets targets, Config config) {
    super(targets);
    this.config = config;
  }

  public Config config() {
    return config;
  }

  @Override
  public String name() {
    return METHOD;
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
  protected String describe(LinearModule t) {
    return METHOD + "(r=" + config.rank() + ") " + t.name();
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
    SplittableRandom random = new SplittableRandom(config.seed() ^ module.hashCode() * 0x9E3779B97F4A7C15L);
    float[] a = new float[Math.toIntExact(in * r)];
    double bound = 1 / Math.sqrt(in);
    for (int i = 0; i < a.length; i++) {
      a[i] =
          (float)
              (config.init() == Init.KAIMING_UNIFORM
                  ? random.nextDouble(-bound, bound)
                  : random.nextGaussian() / r);
    }
    Value aInit = Splice.initializer(g, module + ".lora_A", DenseTensor.ofFloats(null, new long[] {in, r}, a));
    Value bInit =
        Splice.initializer(g, module + ".lora_B", DenseTensor.ofFloats(null, new long[] {r, out}, new float[Math.toIntExact(r * out)]));
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

  private static Node tag(Node n, String module, String role) {
    return GraftTags.tag(n, METHOD, module, role);
  }
}
