package dev.graft.rewrite.peft;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMap;
import dev.graft.ir.Attr;
import dev.graft.ir.Constants;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.GraftTags;
import dev.graft.rewrite.ModuleNames;
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
import java.util.Optional;
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
 *
 * <p>On an ungrouped Conv (group 1; output channels are axis 0 of its OIHW weight and axis 1 of
 * its NCHW output) the delta joins the weight instead, the same padded Gather along axis 0:
 *
 * <pre>
 *   y = Conv(x, W[o, i, kh, kw], b)
 *     => y = Conv(x, Add(W, Gather(Concat(dW, Z, axis 0), idx, axis 0)), b)
 *   dW: [k, i, kh, kw], trainable, starts at 0      Z: [1, i, kh, kw] zeros, frozen
 *   fold: the Add reads constants only, so the exporter evaluates it once into W (names kept)
 * </pre>
 *
 * A branch {@code Conv(x, dW)} beside the Conv would cost a second convolution per output
 * position; the weight form costs one Gather per step. A depthwise or grouped Conv is left out:
 * its channels are its groups, and {@code BatchNormAffinePass} or full fine-tuning reach them.
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

  /**
   * Whether this pass can tune {@code m}'s output channels: a linear layer, or an ungrouped Conv
   * with a constant weight (the modules {@code TaylorScores} and {@code TaylorSelection} accept).
   */
  public static boolean tunable(Module m) {
    if (!(m instanceof LinearModule l)) return false;
    if (l.kind() == ModuleKind.LINEAR) return true;
    return l.kind() == ModuleKind.CONV && l.node().attrLong("group", 1) == 1 && convWeight(l).isPresent();
  }

  /** What {@link #tunable} accepts, for messages. */
  public static final String KINDS = "linear or ungrouped conv";

  private static Optional<Tensor> convWeight(LinearModule l) {
    return Constants.valueOf(GraftTags.origin(l.weight())).filter(w -> w.dims().length >= 3);
  }

  @Override
  protected List<LinearModule> candidates(ImmutableList<Module> modules) {
    List<LinearModule> linears =
        modules.stream().filter(TaylorChannelPass::tunable).map(m -> (LinearModule) m).toList();
    // Every named module must exist, not only one of them: a channel list for a typo would
    // otherwise be dropped without a word.
    Set<String> names = linears.stream().map(Module::name).collect(Collectors.toSet());
    for (String wanted : config.channels().keySet()) {
      checkArgument(
          names.contains(wanted),
          "%s: no linear or ungrouped conv module is named '%s'. Those modules are: %s.",
          METHOD,
          wanted,
          ModuleNames.describe(linears.stream().map(Module::name).toList()));
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
    return KINDS;
  }

  @Override
  protected String describe(LinearModule t) {
    return METHOD + "(k=" + config.channels().get(t.name()).size() + ") " + t.name();
  }

  @Override
  protected long parameters(LinearModule t) {
    long k = config.channels().get(t.name()).size();
    if (t.kind() == ModuleKind.CONV) return k * perChannel(convWeight(t).orElseThrow().dims());
    return t.inFeatures() * k;
  }

  /** The weights of one output channel of a Conv: i · kh · kw. */
  private static long perChannel(long[] dims) {
    long n = 1;
    for (int i = 1; i < dims.length; i++) n *= dims[i];
    return n;
  }

  @Override
  protected List<Entry> apply(Model model, LinearModule t) {
    if (t.kind() == ModuleKind.CONV) return applyConv(model, t);
    Graph g = model.graph();
    String module = t.name();
    List<Integer> cs = config.channels().get(module);
    int k = cs.size();
    long in = t.inFeatures();
    long out = t.outFeatures();

    float[] dw = initialDelta(module, in * k);
    long[] idx = gatherIndex(cs, out);
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

  /** The trainable rows' start: zeros, or Gaussian with {@code initStd} from a per-module seed. */
  private float[] initialDelta(String module, long size) {
    float[] dw = new float[Math.toIntExact(size)];
    if (config.initStd() > 0) {
      SplittableRandom random = new SplittableRandom(config.seed() ^ module.hashCode() * 0x9E3779B97F4A7C15L);
      for (int i = 0; i < dw.length; i++) dw[i] = (float) (random.nextGaussian() * config.initStd());
    }
    return dw;
  }

  /**
   * For each of the {@code out} channels, its row in {@code Concat(dW, Z)}: j for the j-th chosen
   * channel, k (the zero row) for the others.
   */
  private static long[] gatherIndex(List<Integer> chosen, long out) {
    int k = chosen.size();
    long[] idx = new long[Math.toIntExact(out)];
    java.util.Arrays.fill(idx, k);
    for (int j = 0; j < k; j++) idx[chosen.get(j)] = j;
    return idx;
  }

  /** The conv form: {@code Conv(x, Add(W, Gather(Concat(dW, Z, 0), idx, 0)), b)}. */
  private List<Entry> applyConv(Model model, LinearModule t) {
    Graph g = model.graph();
    String module = t.name();
    List<Integer> cs = config.channels().get(module);
    int k = cs.size();
    long[] w = convWeight(t).orElseThrow().dims();
    long out = w[0];
    long per = perChannel(w);
    long[] dDims = w.clone();
    dDims[0] = k;
    long[] zDims = w.clone();
    zDims[0] = 1;
    float[] dw = initialDelta(module, k * per);
    long[] idx = gatherIndex(cs, out);
    Value delta = Splice.initializer(g, module + ".taylor_dW", DenseTensor.ofFloats(null, dDims, dw));
    Value zero = Splice.initializer(g, module + ".taylor_zero", DenseTensor.ofFloats(null, zDims, new float[Math.toIntExact(per)]));
    Value index = Splice.initializer(g, module + ".taylor_index", DenseTensor.ofLongs(null, new long[] {out}, idx));

    Node conv = t.node();
    GraphBuilder b = GraphBuilder.on(g).before(conv).prefix("/graft/" + METHOD + "/" + module);
    Value padded = b.op("Concat", List.of(delta, zero), Attr.of("axis", 0L));
    tag(b.lastNode(), module, "pad");
    Value scattered = b.op("Gather", List.of(padded, index), Attr.of("axis", 0L));
    tag(b.lastNode(), module, "scatter");
    b.op("Add", conv.input(1), scattered);
    Node merge = tag(b.lastNode(), module, GraftTags.MERGE);
    conv.setInput(1, merge.output());
    return List.of(new Entry(delta.name(), METHOD, module, "dW"));
  }

  private static Node tag(Node n, String module, String role) {
    return GraftTags.tag(n, METHOD, module, role);
  }
}
