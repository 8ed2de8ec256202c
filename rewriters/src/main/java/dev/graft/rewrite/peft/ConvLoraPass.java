package dev.graft.rewrite.peft;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Attr;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.ConfiguredPass;
import dev.graft.rewrite.GraftTags;
import dev.graft.rewrite.Splice;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry.Entry;
import dev.graft.rewrite.discover.LinearModule;
import dev.graft.rewrite.discover.Module;
import dev.graft.rewrite.discover.ModuleKind;
import dev.graft.rewrite.method.Fold;
import dev.graft.rewrite.method.PeftMethod;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.SplittableRandom;

/**
 * LoRA on convolutions: the update of a k × k Conv is a low-rank pair of convolutions, a k × k
 * Conv to r channels (with the frozen Conv's strides, pads and dilations) then a 1 × 1 Conv to
 * the output channels.
 *
 * <pre>
 *   y = Conv(x, W[o, i, kh, kw], b)
 *     => y = Add(Conv(x, W, b), Mul(Conv(Conv(x, A[r, i, kh, kw]), B[o, r, 1, 1]), s))
 *
 *   x ──Conv(W, b)──────────────────────┐
 *   │                                   Add ── readers
 *   └─(Dropout)─Conv(A)─Conv(B, 1×1)─Mul(s)┘
 * </pre>
 *
 * Since B is 1 × 1 with stride 1, the branch equals one Conv with weight {@code ΔW[o, i, kh, kw]
 * = s · Σ_r B[o, r] · A[r, i, kh, kw]}, which the exporter adds to W ({@code ConvLoraFold}). B
 * starts at zero (the adapted model computes what the original did); A starts Kaiming-uniform
 * with fan-in {@code i · kh · kw}, from a seed mixed with the module name. s = alpha / r (alpha /
 * sqrt(r) with rsLoRA). Only ungrouped Convs are adapted: a depthwise or grouped Conv's delta
 * would not stay grouped, so it could not fold; {@link BatchNormAffinePass} or full fine-tuning
 * reach those.
 */
public final class ConvLoraPass extends ConfiguredPass<LinearModule, LoraPass.Config> {
  public static final String METHOD = "conv-lora";

  /** The method: LoRA's options; default targets every ungrouped Conv. */
  public static final PeftMethod DEFINITION =
      PeftMethod.targeted(
          METHOD,
          "Conv-LoRA: a k x k Conv to r channels then a 1 x 1 Conv beside each targeted ungrouped Conv",
          "**",
          LoraPass.OPTIONS,
          o -> new ConvLoraPass(o.targets(), LoraPass.Config.read(o)),
          Fold.convBranch());

  public ConvLoraPass(Targets targets, LoraPass.Config config) {
    super(METHOD, targets, config);
    checkArgument(
        !config.init().fromWeight(),
        "conv-lora: init '%s' starts A and B from a linear weight's SVD or QR, which Conv-LoRA does not"
            + " compute; use init: kaiming-uniform or gaussian",
        config.init().name().toLowerCase(java.util.Locale.ROOT).replace('_', '-'));
  }

  @Override
  protected List<LinearModule> candidates(ImmutableList<Module> modules) {
    List<LinearModule> out = new ArrayList<>();
    for (Module m : modules) {
      if (m instanceof LinearModule l && l.kind() == ModuleKind.CONV && l.node().attrLong("group", 1) == 1
          && weight(l).isPresent()) {
        out.add(l);
      }
    }
    return out;
  }

  @Override
  protected String kindDescription() {
    return "ungrouped conv";
  }

  @Override
  protected long parameters(LinearModule t) {
    long[] d = weight(t).orElseThrow().dims();
    long kernel = 1;
    for (int i = 2; i < d.length; i++) kernel *= d[i];
    return (long) config.rank() * (d[1] * kernel + d[0]);
  }

  @Override
  protected List<Entry> apply(Model model, LinearModule t) {
    Graph g = model.graph();
    int r = config.rank();
    long[] d = weight(t).orElseThrow().dims();
    String module = t.name();
    long fanIn = 1;
    for (int i = 1; i < d.length; i++) fanIn *= d[i];
    long[] aDims = d.clone();
    aDims[0] = r;
    long[] bDims = new long[d.length];
    bDims[0] = d[0];
    bDims[1] = r;
    for (int i = 2; i < d.length; i++) bDims[i] = 1;
    SplittableRandom random = new SplittableRandom(config.seed() ^ module.hashCode() * 0x9E3779B97F4A7C15L);
    float[] a = new float[Math.toIntExact(r * fanIn)];
    double bound = 1 / Math.sqrt(fanIn);
    for (int i = 0; i < a.length; i++) {
      a[i] = (float) (config.init() == LoraPass.Init.KAIMING_UNIFORM ? random.nextDouble(-bound, bound) : random.nextGaussian() / r);
    }
    Value aInit = Splice.initializer(g, module + ".lora_A", DenseTensor.ofFloats(null, aDims, a));
    Value bInit = Splice.initializer(g, module + ".lora_B", DenseTensor.ofFloats(null, bDims, new float[Math.toIntExact(d[0] * r)]));
    Value scale = Splice.initializer(g, module + ".lora_scaling", DenseTensor.scalar(null, (float) config.scaling()));

    Value wrapped = GraftTags.throughMerges(t.node().output());
    GraphBuilder b = Splice.after(wrapped.producer().orElseThrow()).prefix("/graft/" + METHOD + "/" + module);
    Value x = t.input();
    if (config.dropout() > 0) {
      x = Splice.dropout(b, model, x, (float) config.dropout());
      tag(b.lastNode(), module, "dropout");
    }
    // A carries the frozen Conv's geometry; B is 1 x 1 with the defaults.
    List<Attr> geometry = new ArrayList<>();
    for (String key : List.of("strides", "pads", "dilations", "auto_pad", "kernel_shape")) {
      t.node().attr(key).ifPresent(attr -> geometry.add(key.equals("kernel_shape") ? Attr.ints(key, kernel(aDims)) : attr));
    }
    Value xa = b.op("Conv", List.of(x, aInit), geometry.toArray(Attr[]::new));
    tag(b.lastNode(), module, "A");
    Value xab = b.op("Conv", xa, bInit);
    tag(b.lastNode(), module, "B");
    Value delta = b.op("Mul", xab, scale);
    tag(b.lastNode(), module, "scale");
    b.op("Add", wrapped, delta);
    Node merge = tag(b.lastNode(), module, GraftTags.MERGE);
    Splice.wrap(wrapped, merge);
    return List.of(new Entry(aInit.name(), METHOD, module, "A"), new Entry(bInit.name(), METHOD, module, "B"));
  }

  private static long[] kernel(long[] dims) {
    long[] k = new long[dims.length - 2];
    System.arraycopy(dims, 2, k, 0, k.length);
    return k;
  }

  private static Optional<Tensor> weight(LinearModule l) {
    return dev.graft.ir.Constants.valueOf(GraftTags.origin(l.weight())).filter(w -> w.dims().length >= 3);
  }

  private static Node tag(Node n, String module, String role) {
    return GraftTags.tag(n, METHOD, module, role);
  }
}
