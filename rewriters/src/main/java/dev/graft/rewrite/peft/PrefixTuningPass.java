package dev.graft.rewrite.peft;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Attr;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.rewrite.ConfiguredPass;
import dev.graft.rewrite.GraftTags;
import dev.graft.rewrite.Splice;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry.Entry;
import dev.graft.rewrite.discover.AttentionModule;
import dev.graft.rewrite.discover.Module;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Prefix tuning (Li and Liang 2021): L learned key and value vectors per layer that every query
 * attends to, joined to the keys and values after the head split, with the attention mask
 * extended so that no query ignores them.
 *
 * <pre>
 *   scores  = MatMul(q, kT)          kT: [b, H, d, S]
 *     =>      MatMul(q, Concat(kT, Expand(Transpose(Reshape(Pk, [1, L, H, d]), 0 2 3 1), [b,1,1,1]), axis 3))
 *   context = MatMul(probs, v)       v:  [b, H, S, d]
 *     =>      MatMul(probs, Concat(v, Expand(Transpose(Reshape(Pv, [1, L, H, d]), 0 2 1 3), [b,1,1,1]), axis 2))
 *   scores + mask                    mask: [b, 1, 1, S] additive (0 = attend, -10000 = ignore)
 *     =>     scores + Concat(mask, zeros [b, 1, 1, L], axis 3)
 * </pre>
 *
 * Pk and Pv are [L, hidden], one row per prefix position, heads side by side as in the projections'
 * outputs. The prefix goes after the real positions rather than before: attention does not depend
 * on the order of keys as long as keys, values and mask agree, and with the frozen operand at
 * input 0 each Concat is a merge node, so discovery finds the attention block as before. Masks
 * are extended in the additive domain (a zero is "not masked"), once per mask value that several
 * layers share. Padded tokens stay masked.
 *
 * <p>With {@code reparameterize}, Pk and Pv come from a small MLP, {@code [Pk | Pv] = Tanh(E·W1 +
 * b1)·W2 + b2}, with E: [L, hidden] (Li and Liang's reparameterisation, which trains more stably).
 * The MLP is for training only: its nodes are tagged with role {@value #REPARAM} and its
 * trainables have roles starting {@value #REPARAM}_; the two nodes tagged {@value #REPARAM_OUT}
 * produce Pk and Pv, which export evaluates once and stores as constants, removing the MLP.
 *
 * <p>Identity initialisation is impossible (any key joins the softmax), so the proof is a separate
 * attention computation with the prefix joined by hand.
 */
public final class PrefixTuningPass extends ConfiguredPass<AttentionModule, PrefixTuningPass.Config> {
  public static final String METHOD = "prefix";
  /** The role of the training-only reparameterisation MLP's nodes. */
  public static final String REPARAM = "reparam";
  /** The role of the nodes whose outputs are Pk and Pv when the MLP makes them. */
  public static final String REPARAM_OUT = "reparam_out";

  /**
   * Prefix tuning's hyperparameters.
   *
   * @param length L, the prefix positions per layer
   * @param reparameterize make Pk and Pv with the training-only MLP
   * @param reparamHidden the MLP's hidden width
   * @param initStd the standard deviation of Pk and Pv (or E) at the start
   */
  public record Config(int length, boolean reparameterize, int reparamHidden, double initStd, long seed) {
    public Config {
      checkArgument(length > 0, "Prefix length must be positive, got %s", length);
      checkArgument(!reparameterize || reparamHidden > 0, "The prefix MLP's hidden width must be positive, got %s", reparamHidden);
      checkArgument(initStd >= 0, "Prefix init std must not be negative, got %s", initStd);
    }

    /** L = 10, no MLP, std 0.02, seed 0. */
    public static Config defaults() {
      return new Config(10, false, 512, 0.02, 0);
    }

    public Config withLength(int l) {
      return new Config(l, reparameterize, reparamHidden, initStd, seed);
    }

    public Config withReparameterization(int hidden) {
      return new Config(length, true, hidden, initStd, seed);
    }

    public Config withInitStd(double std) {
      return new Config(length, reparameterize, reparamHidden, std, seed);
    }

    public Config withSeed(long s) {
      return new Config(length, reparameterize, reparamHidden, initStd, s);
    }

    /** Trainable parameters for one attention block of width {@code hidden}. */
    public long parameters(long hidden) {
      if (!reparameterize) return 2L * length * hidden;
      long m = reparamHidden;
      return length * hidden + hidden * m + m + m * 2 * hidden + 2 * hidden;
    }
  }

  /** Extended masks made in this run, by the mask they extend: layers share one mask. */
  private final Map<Value, Value> extendedMasks = new IdentityHashMap<>();

  public PrefixTuningPass(Targets targets, Config config) {
    super(METHOD, targets, config);
  }

  @Override
  protected List<AttentionModule> candidates(ImmutableList<Module> modules) {
    return modules.stream().filter(m -> m instanceof AttentionModule).map(m -> (AttentionModule) m).toList();
  }

  @Override
  protected String kindDescription() {
    return "attention";
  }

  @Override
  protected String describe(AttentionModule t) {
    return METHOD + "(L=" + config.length() + (config.reparameterize() ? ",mlp" : "") + ") " + t.name();
  }

  @Override
  protected long parameters(AttentionModule t) {
    return config.parameters(t.key().outFeatures());
  }

  @Override
  protected List<Entry> apply(Model model, AttentionModule t) {
    return attach(model, METHOD, t, config, extendedMasks);
  }

  /**
   * Joins a learned prefix to the keys and values of {@code a} and extends its mask; shared with
   * U-Tuning, whose prefix branch this is. Returns the trainables made.
   */
  static List<Entry> attach(Model model, String method, AttentionModule a, Config config, Map<Value, Value> masks) {
    checkArgument(
        a.numHeads().isPresent(),
        "%s: cannot split the prefix of '%s' into heads: the head count is not a constant of its reshape.",
        method, a.name());
    WorkingModels.requireWorkingOpset(model, "Pass '" + method + "'");
    Graph g = model.graph();
    String module = a.name();
    int heads = a.numHeads().getAsInt();
    long hidden = a.key().outFeatures();
    long d = hidden / heads;
    int len = config.length();
    SplittableRandom random = new SplittableRandom(config.seed() ^ (module + method).hashCode() * 0x9E3779B97F4A7C15L);
    List<Entry> entries = new ArrayList<>();

    Node score = a.scoreMatMul();
    Node context = a.contextMatMul();
    GraphBuilder b = GraphBuilder.on(g).before(score).prefix("/graft/" + method + "/" + module);
    Value pk;
    Value pv;
    if (!config.reparameterize()) {
      pk = Splice.initializer(g, module + "." + method + ".key", gaussian(random, config.initStd(), len, hidden));
      pv = Splice.initializer(g, module + "." + method + ".value", gaussian(random, config.initStd(), len, hidden));
      entries.add(new Entry(pk.name(), method, module, "prefix_key"));
      entries.add(new Entry(pv.name(), method, module, "prefix_value"));
    } else {
      long m = config.reparamHidden();
      String base = module + "." + method + "." + REPARAM;
      Value e = Splice.initializer(g, base + "_embedding", gaussian(random, config.initStd(), len, hidden));
      Value w1 = Splice.initializer(g, base + "_w1", uniform(random, hidden, hidden, m));
      Value b1 = Splice.initializer(g, base + "_b1", DenseTensor.ofFloats(null, new long[] {m}, new float[(int) m]));
      Value w2 = Splice.initializer(g, base + "_w2", uniform(random, m, m, 2 * hidden));
      Value b2 = Splice.initializer(g, base + "_b2", DenseTensor.ofFloats(null, new long[] {2 * hidden}, new float[(int) (2 * hidden)]));
      for (Value v : List.of(e, w1, b1, w2, b2)) {
        entries.add(new Entry(v.name(), method, module, REPARAM + v.name().substring(base.length())));
      }
      Value z = tag(b, method, module, REPARAM, b.op("Tanh", tag(b, method, module, REPARAM, b.op("Add", tag(b, method, module, REPARAM, b.op("MatMul", e, w1)), b1))));
      Value kv = tag(b, method, module, REPARAM, b.op("Add", tag(b, method, module, REPARAM, b.op("MatMul", z, w2)), b2));
      Value axis1 = b.int64s(1);
      pk = tag(b, method, module, REPARAM_OUT, b.op("Slice", kv, b.int64s(0), b.int64s(hidden), axis1));
      pv = tag(b, method, module, REPARAM_OUT, b.op("Slice", kv, b.int64s(hidden), b.int64s(2 * hidden), axis1));
    }

    // [L, hidden] -> [1, L, H, d] -> the layout of each operand, then broadcast over the batch.
    Value kOperand = score.input(1);
    Value vOperand = context.input(1);
    Value batch =
        tag(b, method, module, "batch_shape",
            b.op("Concat", List.of(slice(b, method, module, kOperand, 0, 1), b.int64s(1, 1, 1)), Attr.of("axis", 0L)));
    Value headShape = b.int64s(1, len, heads, d);
    Value kPrefix = tag(b, method, module, "key_layout", b.op("Transpose", List.of(tag(b, method, module, "key_layout", b.op("Reshape", pk, headShape))), Attr.ints("perm", 0, 2, 3, 1)));
    Value vPrefix = tag(b, method, module, "value_layout", b.op("Transpose", List.of(tag(b, method, module, "value_layout", b.op("Reshape", pv, headShape))), Attr.ints("perm", 0, 2, 1, 3)));
    kPrefix = tag(b, method, module, "key_batch", b.op("Expand", kPrefix, batch));
    vPrefix = tag(b, method, module, "value_batch", b.op("Expand", vPrefix, batch));
    b.op("Concat", List.of(kOperand, kPrefix), Attr.of("axis", 3L));
    score.setInput(1, GraftTags.tag(b.lastNode(), method, module, GraftTags.MERGE).output());
    b.before(context);
    b.op("Concat", List.of(vOperand, vPrefix), Attr.of("axis", 2L));
    context.setInput(1, GraftTags.tag(b.lastNode(), method, module, GraftTags.MERGE).output());

    if (a.maskAdd() != null) extendMask(model, method, module, a, len, false, masks);
    return entries;
  }

  /**
   * Makes the mask Add of {@code a} read its mask with {@code len} zeros (not masked, in the
   * additive domain) after the last axis, or before it with {@code front} (prompt tuning, whose
   * positions come first). Appended zeros make a merge node; prepended ones cannot (the frozen
   * mask is not at input 0), which is fine: discovery never walks the mask side.
   */
  static void extendMask(
      Model model, String method, String module, AttentionModule a, int len, boolean front, Map<Value, Value> masks) {
    Node add = a.maskAdd();
    checkArgument(
        add.is("Add"),
        "%s: '%s' applies the attention mask of '%s' with %s; only an additive mask (Add) can be extended.",
        method, add.displayName(), module, add.opType());
    int maskSide = fromScores(add.input(0), a.scoreMatMul()) ? 1 : 0;
    Value mask = add.input(maskSide);
    Value extended = masks.get(mask);
    if (extended == null) {
      Graph g = model.graph();
      GraphBuilder b = Splice.afterProducerOf(mask, g).prefix("/graft/" + method + "/mask");
      // zeros of the mask's shape with its last axis L long: [b, 1, 1, L] for [b, 1, 1, S].
      Value lead = slice(b, method, module, mask, 0, -1);
      Value zerosShape = tag(b, method, module, "mask_shape", b.op("Concat", List.of(lead, b.int64s(1)), Attr.of("axis", 0L)));
      Value zeros = tag(b, method, module, "mask_zeros", b.op("Expand", b.floats(new long[] {len}, new float[len]), zerosShape));
      b.op("Concat", front ? List.of(zeros, mask) : List.of(mask, zeros), Attr.of("axis", -1L));
      extended = GraftTags.tag(b.lastNode(), method, module, front ? "mask" : GraftTags.MERGE).output();
      masks.put(mask, extended);
    }
    add.setInput(maskSide, extended);
  }

  /** Whether {@code v} is the score MatMul's output through a few scaling or pass-through ops. */
  private static boolean fromScores(Value v, Node score) {
    Value cur = v;
    for (int i = 0; i < 6 && cur != null; i++) {
      Node p = cur.producer().orElse(null);
      if (p == null) return false;
      if (p == score) return true;
      cur = p.input(0);
    }
    return false;
  }

  /** Slice(Shape(x), [from], [to]) on axis 0; to = -1 is "all but the last". */
  private static Value slice(GraphBuilder b, String method, String module, Value x, long from, long to) {
    Value shape = tag(b, method, module, "shape", b.op("Shape", x));
    return tag(b, method, module, "shape", b.op("Slice", shape, b.int64s(from), b.int64s(to), b.int64s(0)));
  }

  private static Value tag(GraphBuilder b, String method, String module, String role, Value made) {
    GraftTags.tag(b.lastNode(), method, module, role);
    return made;
  }

  private static DenseTensor gaussian(SplittableRandom r, double std, long rows, long cols) {
    float[] v = new float[Math.toIntExact(rows * cols)];
    for (int i = 0; i < v.length; i++) v[i] = (float) (r.nextGaussian() * std);
    return DenseTensor.ofFloats(null, new long[] {rows, cols}, v);
  }

  private static DenseTensor uniform(SplittableRandom r, long fanIn, long rows, long cols) {
    float[] v = new float[Math.toIntExact(rows * cols)];
    double bound = 1 / Math.sqrt(fanIn);
    for (int i = 0; i < v.length; i++) v[i] = (float) r.nextDouble(-bound, bound);
    return DenseTensor.ofFloats(null, new long[] {rows, cols}, v);
  }
}
