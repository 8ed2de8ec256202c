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
 * LoHa (Hyeon-Woo et al. 2022, FedPara; LyCORIS): a low-rank Hadamard product, whose rank can
 * reach r² with the parameters of two rank-r factorisations.
 *
 * <pre>
 *   ΔW = Mul(Mul(MatMul(A1, B1), MatMul(A2, B2)), s)     A1, A2 [in, r], B1, B2 [r, out], s = alpha / r
 *   y = MatMul(x, W)  =>  y = MatMul(x, Add(W, ΔW))       (see {@link WeightDeltaPass})
 * </pre>
 *
 * A1, A2 and B1 start Gaussian (std 0.1, PEFT's LoHa init), B2 at zero, so ΔW = 0 at
 * initialisation. The update reads constants only and folds into W on export.
 */
public final class LohaPass extends WeightDeltaPass<LohaPass.Config> {
  public static final String METHOD = "loha";

  public record Config(int rank, double alpha, long seed) implements LowRank {
    public Config {
      checkArgument(rank > 0, "LoHa rank must be positive, got %s", rank);
    }

    public static Config defaults() {
      return new Config(8, 16, 0);
    }
  }

  public static final PeftMethod DEFINITION =
      PeftMethod.targeted(
          METHOD,
          "LoHa: the Hadamard product of two low-rank products as each targeted linear's weight delta",
          PassFactory.QUERY_VALUE,
          LowRank.OPTIONS,
          o -> new LohaPass(o.targets(), LowRank.read(o, Config.defaults(), Config::new)),
          Fold.constants());

  public LohaPass(Targets targets, Config config) {
    super(METHOD, targets, config);
  }

  @Override
  protected long parameters(LinearModule t) {
    return 2L * config.rank() * (t.inFeatures() + t.outFeatures());
  }

  @Override
  protected Delta delta(Model model, GraphBuilder b, LinearModule t) {
    Graph g = model.graph();
    int r = config.rank();
    long in = t.inFeatures();
    long out = t.outFeatures();
    String m = t.name();
    SplittableRandom random = new SplittableRandom(config.seed() ^ m.hashCode() * 0x9E3779B97F4A7C15L);
    Value a1 = Splice.initializer(g, m + ".loha_A1", gaussian(random, in, r));
    Value b1 = Splice.initializer(g, m + ".loha_B1", gaussian(random, r, out));
    Value a2 = Splice.initializer(g, m + ".loha_A2", gaussian(random, in, r));
    Value b2 = Splice.initializer(g, m + ".loha_B2", DenseTensor.ofFloats(null, new long[] {r, out}, new float[Math.toIntExact(r * out)]));
    Value s = Splice.initializer(g, m + ".loha_scaling", DenseTensor.scalar(null, (float) (config.alpha() / r)));
    Value p1 = tag(b, t, "product1", "MatMul", a1, b1);
    Value p2 = tag(b, t, "product2", "MatMul", a2, b2);
    Value h = tag(b, t, "hadamard", "Mul", p1, p2);
    Value delta = tag(b, t, "scale", "Mul", h, s);
    return new Delta(
        delta,
        List.of(
            new Entry(a1.name(), METHOD, m, "A1"),
            new Entry(b1.name(), METHOD, m, "B1"),
            new Entry(a2.name(), METHOD, m, "A2"),
            new Entry(b2.name(), METHOD, m, "B2")));
  }

  private static DenseTensor gaussian(SplittableRandom random, long rows, long cols) {
    float[] x = new float[Math.toIntExact(rows * cols)];
    for (int i = 0; i < x.length; i++) x[i] = (float) (random.nextGaussian() * 0.1);
    return DenseTensor.ofFloats(null, new long[] {rows, cols}, x);
  }
}
