package dev.graft.rewrite.peft;

import static com.google.common.base.Preconditions.checkArgument;

import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.rewrite.Splice;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry.Entry;
import dev.graft.rewrite.discover.LinearModule;
import dev.graft.rewrite.method.Fold;
import dev.graft.rewrite.method.PeftMethod;
import dev.graft.rewrite.recipe.PassFactory;
import java.util.List;
import java.util.SplittableRandom;

/**
 * LoKr (Yeh et al. 2024, LyCORIS): the weight delta as a Kronecker product of a small full matrix
 * and a low-rank one.
 *
 * <pre>
 *   ΔW = Mul(kron(C, MatMul(A, B)), s)     C [f, f], A [in/f, r], B [r, out/f], s = alpha / r
 *   kron(C, D) = Reshape(Mul(Reshape(C, [f, 1, f, 1]), Reshape(D, [1, m, 1, n])), [f·m, f·n])
 *   y = MatMul(x, W)  =>  y = MatMul(x, Add(W, ΔW))       (see {@link WeightDeltaPass})
 * </pre>
 *
 * f ({@code factor}, default 8) must divide both the input and the output size; linears it does
 * not divide are not candidates. C starts at zero (so ΔW = 0 at initialisation), A and B
 * Kaiming-uniform. The update reads constants only and folds into W on export.
 */
public final class LokrPass extends WeightDeltaPass<LokrPass.Config> {
  public static final String METHOD = "lokr";

  public record Config(int rank, double alpha, int factor, long seed) implements LowRank {
    public Config {
      checkArgument(rank > 0, "LoKr rank must be positive, got %s", rank);
      checkArgument(factor > 0, "LoKr factor must be positive, got %s", factor);
    }

    public static Config defaults() {
      return new Config(8, 16, 8, 0);
    }
  }

  public static final PeftMethod DEFINITION =
      PeftMethod.targeted(
          METHOD,
          "LoKr: the Kronecker product of a small matrix and a low-rank product as each targeted linear's weight delta",
          PassFactory.QUERY_VALUE,
          List.of("rank", "alpha", "factor", "seed"),
          o -> {
            Config d = Config.defaults();
            return new LokrPass(
                o.targets(),
                new Config(
                    o.integer("rank", d.rank()),
                    o.number("alpha", d.alpha()),
                    o.integer("factor", d.factor()),
                    o.longInteger("seed", d.seed())));
          },
          Fold.constants());

  public LokrPass(Targets targets, Config config) {
    super(METHOD, targets, config);
  }

  @Override
  protected boolean fits(LinearModule t) {
    return t.inFeatures() % config.factor() == 0 && t.outFeatures() % config.factor() == 0;
  }

  @Override
  protected String kindDescription() {
    return "linear whose sizes the factor " + config.factor() + " divides";
  }

  @Override
  protected String describe(LinearModule t) {
    return METHOD + "(r=" + config.rank() + ", f=" + config.factor() + ") " + t.name();
  }

  @Override
  protected long parameters(LinearModule t) {
    long f = config.factor();
    return f * f + config.rank() * (t.inFeatures() / f + t.outFeatures() / f);
  }

  @Override
  protected Delta delta(Model model, GraphBuilder b, LinearModule t) {
    Graph g = model.graph();
    int r = config.rank();
    long f = config.factor();
    long m = t.inFeatures() / f;
    long n = t.outFeatures() / f;
    String mod = t.name();
    SplittableRandom random = new SplittableRandom(config.seed() ^ mod.hashCode() * 0x9E3779B97F4A7C15L);
    Value c = Splice.initializer(g, mod + ".lokr_C", DenseTensor.ofFloats(null, new long[] {f, f}, new float[Math.toIntExact(f * f)]));
    Value a = Splice.initializer(g, mod + ".lokr_A", uniform(random, m, r, m));
    Value bm = Splice.initializer(g, mod + ".lokr_B", uniform(random, r, n, r));
    Value s = Splice.initializer(g, mod + ".lokr_scaling", DenseTensor.scalar(null, (float) (config.alpha() / r)));
    Value d = tag(b, t, "low_rank", "MatMul", a, bm);
    Value c4 = tag(b, t, "C_4d", "Reshape", c, b.int64s(f, 1, f, 1));
    Value d4 = tag(b, t, "D_4d", "Reshape", d, b.int64s(1, m, 1, n));
    Value k4 = tag(b, t, "kron_4d", "Mul", c4, d4);
    Value kron = tag(b, t, "kron", "Reshape", k4, b.int64s(f * m, f * n));
    Value delta = tag(b, t, "scale", "Mul", kron, s);
    return new Delta(
        delta,
        List.of(
            new Entry(c.name(), METHOD, mod, "C"), new Entry(a.name(), METHOD, mod, "A"), new Entry(bm.name(), METHOD, mod, "B")));
  }

  private static DenseTensor uniform(SplittableRandom random, long rows, long cols, long fanIn) {
    float[] x = new float[Math.toIntExact(rows * cols)];
    double bound = 1 / Math.sqrt(fanIn);
    for (int i = 0; i < x.length; i++) x[i] = (float) random.nextDouble(-bound, bound);
    return DenseTensor.ofFloats(null, new long[] {rows, cols}, x);
  }
}
