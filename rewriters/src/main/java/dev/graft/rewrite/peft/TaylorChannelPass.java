package dev.graft.rewrite.peft;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMap;
import dev.graft.ir.Attr;
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
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

/**
 * Taylor-importance channel tuning (stage two of the two-stage paradigm): only chosen output
 * channels C of chosen linear layers train, through a delta that scatters into those channels
 * and folds back into W exactly. The channels come from outside as a plain list per module (the
 * trainer's {@code TaylorScores} ranks them; rewriters never import trainer).
 *
 * <pre>
 *   y = MatMul(x, W)                                  W: [in, out], C = (c_0 .. c_k-1)
 *     => y = Add(MatMul(x, W), Gather(MatMul(x, Concat(dW, Z, axis 1)), idx, axis -1))
 *   dW: [in, k], trainable, starts at 0      Z: [in, 1] zeros, frozen
 *   idx: [out] int64, idx[c_j] = j and idx[c] = k (the zero column) for every other channel
 *   fold: W' = W + Gather(Concat(dW, Z, 1), idx, axis 1)
 * </pre>
 *
 * The scatter is a Gather from a padded delta: channel c_j reads column j of x·dW, every other
 * channel reads the zero column. Gather, Concat and MatMul all have gradient rules, where a
 * Scatter would need one of its own, and the branch costs in·(k+1) multiply-adds per token
 * instead of a second in·out product. As with LoRA the delta joins before the bias Add, and the
 * dW = 0 start leaves the model's outputs as they were.
 */
public final class TaylorChannelPass extends ModulePass<LinearModule> {
  public static final String METHOD = "taylor-channels";

  /**
   * The channels to tune.
   *
   * @param channels module name to its output channels, in order; each list non-empty, without
   *     repeats, and within the module's output width (checked against the model)
   * @param initStd the standard deviation dW starts with; 0 (the default) starts at the
   *     original model
   */
  public record Config(ImmutableMap<String, ImmutableList<Integer>> channels, double initStd, long seed) {
    public Config {
      checkArgument(!channels.isEmpty(), "Taylor channel tuning needs at least one module with its channels");
      for (Map.Entry<String, ImmutableList<Integer>> e : channels.entrySet()) {
        List<Integer> cs = e.getValue();
        checkArgument(!cs.isEmpty(), "Module '%s' is given no channels; give at least one or leave the module out", e.getKey());
        Set<Integer> seen = new HashSet<>();
        for (int c : cs) {
          checkArgument(c >= 0, "Module '%s': channel %s is negative", e.getKey(), c);
          checkArgument(seen.add(c), "Module '%s': channel %s is listed twice", e.getKey(), c);
        }
      }
      checkArgument(initStd >= 0, "Taylor delta init std must not be negative, got %s", initStd);
    }

    public static Config of(Map<String, ? extends List<Integer>> channels) {
      Map<String, ImmutableList<Integer>> copy = new LinkedHashMap<>();
      channels.forEach((k, v) -> copy.put(k, ImmutableList.copyOf(v)));
      return new Config(ImmutableMap.copyOf(copy), 0, 0);
    }

    public Config withInit(double std, long s) {
      return new Config(channels, std, s);
    }
  }

  private final Config config;

  public TaylorChannelPass(Config config) {
    super(targetsOf(config.channels().keySet()));
    this.config = config;
  }

  /** Exactly the named modules. */
  private static Targets targetsOf(Set<String> names) {
    Targets any = Targets.all();
    String regex = names.stream().map(Pattern::quote).collect(Collectors.joining("|"));
    return new Targets(String.join(", ", names), Pattern.compile(regex), any.fromLayer(), any.toLayer());
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
    List<LinearModule> linears =
        modules.stream()
            .filter(m -> m instanceof LinearModule l && l.kind() == ModuleKind.LINEAR)
            .map(m -> (LinearModule) m)
            .toList();
    // Every named module must exist, not only one of them: a channel list for a typo would
    // otherwise be dropped without a word.
    Set<String> names = linears.stream().map(Module::name).collect(Collectors.toSet());
    for (String wanted : config.channels().keySet()) {
      checkArgument(
          names.contains(wanted),
          "%s: no linear module is named '%s'. The linear modules are: %s.",
          METHOD,
          wanted,
          linears.stream().map(Module::name).collect(Collectors.joining(", ")));
    }
    for (LinearModule l : linears) {
      List<Integer> cs = config.channels().get(l.name());
      if (cs == null) continue;
      int max = cs.stream().mapToInt(Integer::intValue).max().orElse(0);
      checkArgument(
          max < l.outFeatures(),
          "%s: module '%s' has %s output channels (0..%s); channel %s is out of range",
          METHOD,
          l.name(),
          l.outFeatures(),
          l.outFeatures() - 1,
          max);
    }
    return linears;
  }

  @Override
  protected String kindDescription() {
    return "linear";
  }

  @Override
  protected String describe(LinearModule t) {
    return METHOD + "(k=" + config.channels().get(t.name()).size() + ") " + t.name();
  }

  @Override
  protected long parameters(LinearModule t) {
    return t.inFeatures() * config.channels().get(t.name()).size();
  }

  @Override
  protected List<Entry> apply(Model model, LinearModule t) {
    Graph g = model.graph();
    String module = t.name();
    List<Integer> cs = config.channels().get(module);
    int k = cs.size();
    long in = t.inFeatures();
    long out = t.outFeatures();

    float[] dw = new float[Math.toIntExact(in * k)];
    if (config.initStd() > 0) {
      SplittableRandom random = new SplittableRandom(config.seed() ^ module.hashCode() * 0x9E3779B97F4A7C15L);
      for (int i = 0; i < dw.length; i++) dw[i] = (float) (random.nextGaussian() * config.initStd());
    }
    long[] idx = new long[Math.toIntExact(out)];
    java.util.Arrays.fill(idx, k);
    for (int j = 0; j < k; j++) idx[cs.get(j)] = j;
    Value delta = Splice.initializer(g, module + ".taylor_dW", DenseTensor.ofFloats(null, new long[] {in, k}, dw));
    Value zero =
        Splice.initializer(g, module + ".taylor_zero", DenseTensor.ofFloats(null, new long[] {in, 1}, new float[Math.toIntExact(in)]));
    Value index = Splice.initializer(g, module + ".taylor_index", DenseTensor.ofLongs(null, new long[] {out}, idx));

    Value wrapped = GraftTags.throughMerges(t.node().output());
    GraphBuilder b = Splice.after(wrapped.producer().orElseThrow()).prefix("/graft/" + METHOD + "/" + module);
    Value padded = b.op("Concat", List.of(delta, zero), Attr.of("axis", 1L));
    tag(b.lastNode(), module, "pad");
    Value xd = b.op("MatMul", t.input(), padded);
    tag(b.lastNode(), module, "delta");
    // The last axis, counted from the front where the rank is known (negative axes need opset 11).
    long axis = t.input().shape().map(s -> (long) s.rank() - 1).orElse(-1L);
    Value scattered = b.op("Gather", List.of(xd, index), Attr.of("axis", axis));
    tag(b.lastNode(), module, "scatter");
    b.op("Add", wrapped, scattered);
    Node merge = tag(b.lastNode(), module, GraftTags.MERGE);
    Splice.wrap(wrapped, merge);
    return List.of(new Entry(delta.name(), METHOD, module, "dW"));
  }

  private static Node tag(Node n, String module, String role) {
    return GraftTags.tag(n, METHOD, module, role);
  }
}
