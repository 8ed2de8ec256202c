package dev.graft.rewrite.peft;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMap;
import com.google.common.collect.ImmutableSet;
import dev.graft.ir.Constants;
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
import dev.graft.rewrite.method.Fold;
import dev.graft.rewrite.method.PeftLayout;
import dev.graft.rewrite.method.PeftMethod;
import dev.graft.rewrite.recipe.PassFactory;
import java.util.List;
import java.util.SplittableRandom;

/**
 * DoRA (Liu et al. 2024, weight-decomposed low-rank adaptation): the weight is split into a
 * magnitude per output feature and a direction; the direction takes a LoRA update and is
 * renormalised, the magnitude trains as a vector.
 *
 * <pre>
 *   y = MatMul(x, W)  =>  y = MatMul(x, W'),   W' = Mul(V, Div(Add(‖W‖, dm), ‖V‖)),
 *                                              V  = Add(W, Mul(MatMul(A, B), s))
 *   ‖·‖ = Sqrt(ReduceSum(Mul(·, ·), axis in, keepdims))  (one norm per output feature: a column of
 *   a MatMul's [in, out] W, a row of a Gemm's transposed [out, in] W)
 * </pre>
 *
 * The magnitude is m = ‖W‖ + dm: ‖W‖ is computed in the graph from the frozen W, dm (shaped like
 * m) trains and starts at zero, so ∂L/∂dm = ∂L/∂m and training follows DoRA's magnitude exactly,
 * without a norm computed outside ONNX Runtime. A starts Kaiming-uniform and B at zero as in
 * {@link LoraPass}, so at initialisation V = W, ‖V‖ = ‖W‖ bit for bit and W' = W: the adapted
 * model computes what the original did. The whole update reads constants only, so it folds
 * ({@link Fold.Constants}): the exporter evaluates W' once and it replaces W. The norm is
 * differentiated through (the paper's form; PEFT's default detaches it to save memory).
 */
public final class DoraPass extends ConfiguredPass<LinearModule, DoraPass.Config> {
  public static final String METHOD = "dora";

  /**
   * DoRA's hyperparameters: the LoRA rank and alpha of the direction update (s = alpha / r).
   */
  public record Config(int rank, double alpha, long seed) implements LowRank {
    public Config {
      checkArgument(rank > 0, "DoRA rank must be positive, got %s", rank);
    }

    public static Config defaults() {
      return new Config(8, 16, 0);
    }
  }

  /** The method: options rank, alpha and seed; default targets the attention's query and value. */
  public static final PeftMethod DEFINITION =
      PeftMethod.targeted(
          METHOD,
          "DoRA: a magnitude vector and a LoRA-updated, renormalised direction for each targeted linear",
          PassFactory.QUERY_VALUE,
          LowRank.OPTIONS,
          o -> new DoraPass(o.targets(), LowRank.read(o, Config.defaults(), Config::new)),
          Fold.constants())
          // PEFT's LoRA keys with use_dora; its magnitude m = ‖W‖ + dm, converted by PeftAdapterFiles.
          .withPeft(new PeftLayout("LORA", ImmutableMap.of("A", "lora_A.weight", "B", "lora_B.weight", "dm", "lora_magnitude_vector"),
              ImmutableSet.of("A", "B")));

  public DoraPass(Targets targets, Config config) {
    super(METHOD, targets, config);
  }

  @Override
  protected List<LinearModule> candidates(ImmutableList<Module> modules) {
    return modules.stream()
        .filter(m -> m instanceof LinearModule l && l.kind() == ModuleKind.LINEAR && Constants.valueOf(GraftTags.origin(l.weight())).map(w -> w.dims().length == 2).orElse(false))
        .map(m -> (LinearModule) m)
        .filter(l -> !l.node().is("Gemm") || l.node().attrLong("transA", 0) == 0)
        .toList();
  }

  @Override
  protected String kindDescription() {
    return "linear with a constant 2-D weight";
  }

  @Override
  protected long parameters(LinearModule t) {
    return (long) config.rank() * (t.inFeatures() + t.outFeatures()) + t.outFeatures();
  }

  @Override
  protected List<Entry> apply(Model model, LinearModule t) {
    Graph g = model.graph();
    int r = config.rank();
    long in = t.inFeatures();
    long out = t.outFeatures();
    String module = t.name();
    Node linear = t.node();
    boolean transposed = linear.is("Gemm") && linear.attrLong("transB", 0) == 1; // W is [out, in]
    long inAxis = transposed ? 1 : 0;

    SplittableRandom random = new SplittableRandom(config.seed() ^ module.hashCode() * 0x9E3779B97F4A7C15L);
    float[] a = new float[Math.toIntExact(in * r)];
    double bound = 1 / Math.sqrt(in);
    for (int i = 0; i < a.length; i++) a[i] = (float) random.nextDouble(-bound, bound);
    Value aInit = Splice.initializer(g, module + ".dora_A", DenseTensor.ofFloats(null, new long[] {in, r}, a));
    Value bInit =
        Splice.initializer(g, module + ".dora_B", DenseTensor.ofFloats(null, new long[] {r, out}, new float[Math.toIntExact(r * out)]));
    Value scale = Splice.initializer(g, module + ".dora_scaling", DenseTensor.scalar(null, (float) (config.alpha() / r)));
    long[] mDims = transposed ? new long[] {out, 1} : new long[] {1, out};
    Value dm = Splice.initializer(g, module + ".dora_dm", DenseTensor.ofFloats(null, mDims, new float[Math.toIntExact(out)]));

    Value w = linear.input(1);
    GraphBuilder b = GraphBuilder.on(g).before(linear).prefix("/graft/" + METHOD + "/" + module);
    Value ab = b.op("MatMul", aInit, bInit);
    tag(b.lastNode(), module, "AB");
    if (transposed) {
      ab = b.op("Transpose", ab);
      tag(b.lastNode(), module, "transpose");
    }
    Value delta = b.op("Mul", ab, scale);
    tag(b.lastNode(), module, "scale");
    Value v = b.op("Add", w, delta);
    tag(b.lastNode(), module, GraftTags.MERGE);
    Value normW = norm(b, model, w, inAxis, module, "norm_W");
    Value normV = norm(b, model, v, inAxis, module, "norm_V");
    Value m = b.op("Add", normW, dm);
    tag(b.lastNode(), module, "magnitude");
    Value ratio = b.op("Div", m, normV);
    tag(b.lastNode(), module, "ratio");
    b.op("Mul", v, ratio);
    Node merge = tag(b.lastNode(), module, GraftTags.MERGE);
    linear.setInput(1, merge.output());
    return List.of(
        new Entry(aInit.name(), METHOD, module, "A"),
        new Entry(bInit.name(), METHOD, module, "B"),
        new Entry(dm.name(), METHOD, module, "dm"));
  }

  /** The norm of each output feature: Sqrt(ReduceSum(x·x)) over the input axis, kept as a broadcastable vector. */
  private static Value norm(GraphBuilder b, Model model, Value x, long inAxis, String module, String role) {
    Value sq = b.op("Mul", x, x);
    tag(b.lastNode(), module, role + "_square");
    Value sum = Splice.reduceSum(b, model, sq, true, inAxis);
    tag(b.lastNode(), module, role + "_sum");
    Value n = b.op("Sqrt", sum);
    tag(b.lastNode(), module, role);
    return n;
  }

  private static Node tag(Node n, String module, String role) {
    return GraftTags.tag(n, METHOD, module, role);
  }
}
