package dev.graft.rewrite.peft;

import static com.google.common.base.Preconditions.checkArgument;

import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.rewrite.ConfiguredPass;
import dev.graft.rewrite.Splice;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry.Entry;
import dev.graft.rewrite.discover.LinearModule;
import dev.graft.rewrite.method.Fold;
import dev.graft.rewrite.method.PeftMethod;
import dev.graft.rewrite.recipe.PassFactory;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * VeRA (Kopiczko et al. 2024, vector-based random matrix adaptation): one pair of frozen random
 * matrices shared by every adapted linear of the same shape; each linear trains only two scaling
 * vectors.
 *
 * <pre>
 *   ΔW = MatMul(Mul(A, d), Mul(B, b))      A [in, r], B [r, out] frozen, shared;  d [r], b [out] trained
 *   y = MatMul(x, W)  =>  y = MatMul(x, Add(W, ΔW))       (see {@link WeightDeltaPass})
 * </pre>
 *
 * A and B are Kaiming-uniform draws from the seed and their shape (so a replay on the base makes
 * the same ones); d starts at {@code d-init} (0.1, the paper's), b at zero, so ΔW = 0 at
 * initialisation. The update reads constants only and folds into W on export.
 */
public final class VeraPass extends WeightDeltaPass<VeraPass.Config> {
  public static final String METHOD = "vera";

  public record Config(int rank, double dInit, long seed) implements ConfiguredPass.Ranked {
    public Config {
      checkArgument(rank > 0, "VeRA rank must be positive, got %s", rank);
    }

    public static Config defaults() {
      return new Config(256, 0.1, 0);
    }
  }

  public static final PeftMethod DEFINITION =
      PeftMethod.targeted(
          METHOD,
          "VeRA: frozen random matrices shared across layers, two trained scaling vectors per targeted linear",
          PassFactory.QUERY_VALUE,
          List.of("rank", "d-init", "seed"),
          o -> {
            Config d = Config.defaults();
            return new VeraPass(
                o.targets(),
                new Config(o.integer("rank", d.rank()), o.number("d-init", d.dInit()), o.longInteger("seed", d.seed())));
          },
          Fold.constants());

  public VeraPass(Targets targets, Config config) {
    super(METHOD, targets, config);
  }

  @Override
  protected long parameters(LinearModule t) {
    return config.rank() + t.outFeatures();
  }

  @Override
  protected Delta delta(Model model, GraphBuilder b, LinearModule t) {
    Graph g = model.graph();
    int r = config.rank();
    long in = t.inFeatures();
    long out = t.outFeatures();
    Value a = shared(g, "vera_A_" + in + "x" + r + "_seed" + config.seed(), in, r, in);
    Value bm = shared(g, "vera_B_" + r + "x" + out + "_seed" + config.seed(), r, out, r);
    float[] dInit = new float[r];
    Arrays.fill(dInit, (float) config.dInit());
    Value d = Splice.initializer(g, t.name() + ".vera_d", DenseTensor.ofFloats(null, new long[] {r}, dInit));
    Value bv = Splice.initializer(g, t.name() + ".vera_b", DenseTensor.ofFloats(null, new long[] {out}, new float[Math.toIntExact(out)]));
    Value ad = tag(b, t, "A_d", "Mul", a, d);
    Value bb = tag(b, t, "B_b", "Mul", bm, bv);
    Value delta = tag(b, t, "delta", "MatMul", ad, bb);
    return new Delta(delta, List.of(new Entry(d.name(), METHOD, t.name(), "d"), new Entry(bv.name(), METHOD, t.name(), "b")));
  }

  /** The frozen [rows, cols] matrix of this name, made once (Kaiming-uniform, bound 1/sqrt(fanIn)). */
  private static Value shared(Graph g, String name, long rows, long cols, long fanIn) {
    return g.initializer(name).orElseGet(() -> {
      SplittableRandom random = new SplittableRandom(name.hashCode() * 0x9E3779B97F4A7C15L);
      float[] x = new float[Math.toIntExact(rows * cols)];
      double bound = 1 / Math.sqrt(fanIn);
      for (int i = 0; i < x.length; i++) x[i] = (float) random.nextDouble(-bound, bound);
      return g.addInitializer(name, DenseTensor.ofFloats(name, new long[] {rows, cols}, x));
    });
  }
}
