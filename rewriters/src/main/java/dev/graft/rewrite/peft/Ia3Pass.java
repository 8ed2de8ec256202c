package dev.graft.rewrite.peft;

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
import dev.graft.rewrite.discover.FeedForwardModule;
import dev.graft.rewrite.discover.LinearModule;
import dev.graft.rewrite.discover.Module;
import dev.graft.rewrite.discover.ModuleKind;
import java.util.Arrays;
import java.util.List;

/**
 * IA3 (Liu et al. 2022, "(IA)^3"): learned per-channel scaling vectors l on the keys and values
 * (after their projections) and on the feed-forward's hidden activation (after the activation,
 * before the down projection). l starts at ones, so the adapted model computes what the original
 * did.
 *
 * <p>The scaling is written on the frozen constants rather than on the activations, which is the
 * same function and keeps the activations' graph as the exporter wrote it (discovery, and an
 * exporter that folds the merges by evaluating constants, see no new activation nodes):
 *
 * <pre>
 *   key/value:  (x·W + b) ⊙ l      =  x·(W ⊙ l) + (b ⊙ l)
 *     W => Mul(W, l)   b => Mul(b, l)                              l: [out]
 *   feed-forward:  (a ⊙ l)·W_down  =  a·(W_down ⊙ l[:, None])
 *     W_down => Mul(W_down, Unsqueeze(l, 1))                        l: [hidden of the ffn]
 * </pre>
 *
 * Targets are linear names for output scaling ({@code layer.*.attention.{key,value}}) and
 * feed-forward block names for activation scaling ({@code layer.*.ffn}); {@link #DEFAULT_TARGETS}
 * is IA3's usual choice, both together.
 */
public final class Ia3Pass extends ModulePass<Module> {
  public static final String METHOD = "ia3";
  public static final String DEFAULT_TARGETS = "layer.*.{attention.key,attention.value,ffn}";

  public Ia3Pass(Targets targets) {
    super(targets);
  }

  /** Keys, values and the feed-forward activation of every layer. */
  public static Ia3Pass defaults() {
    return new Ia3Pass(Targets.glob(DEFAULT_TARGETS));
  }

  @Override
  public String name() {
    return METHOD;
  }

  @Override
  protected List<Module> candidates(ImmutableList<Module> modules) {
    return modules.stream()
        .filter(m -> (m instanceof LinearModule l && l.kind() == ModuleKind.LINEAR) || m instanceof FeedForwardModule)
        .toList();
  }

  @Override
  protected String kindDescription() {
    return "linear or feed-forward";
  }

  @Override
  protected long parameters(Module t) {
    return t instanceof FeedForwardModule f ? f.down().inFeatures() : ((LinearModule) t).outFeatures();
  }

  @Override
  protected List<Entry> apply(Model model, Module t) {
    Graph g = model.graph();
    String module = t.name();
    long n = parameters(t);
    float[] ones = new float[Math.toIntExact(n)];
    Arrays.fill(ones, 1f);
    Value l = Splice.initializer(g, module + ".ia3_l", DenseTensor.ofFloats(null, new long[] {n}, ones));
    if (t instanceof FeedForwardModule f) {
      LinearModule down = f.down();
      // Rows of W_down ([in, out]) are input channels; Gemm with transB stores [out, in].
      boolean rowsAreInputs = !(down.node().is("Gemm") && down.node().attrLong("transB", 0) != 0);
      GraphBuilder b = builder(g, down.node(), module);
      Value scale = l;
      if (rowsAreInputs) {
        scale = Splice.unsqueeze(b, model, l, 1);
        tag(b.lastNode(), module, "l_column");
      }
      scaleInput(b, down.node(), 1, scale, module);
    } else {
      LinearModule lin = (LinearModule) t;
      boolean columnsAreOutputs = !(lin.node().is("Gemm") && lin.node().attrLong("transB", 0) != 0);
      GraphBuilder b = builder(g, lin.node(), module);
      Value scale = l;
      if (!columnsAreOutputs) {
        scale = Splice.unsqueeze(b, model, l, 1);
        tag(b.lastNode(), module, "l_column");
      }
      scaleInput(b, lin.node(), 1, scale, module);
      if (lin.bias().isPresent()) {
        Node reader = lin.biasAdd() != null ? lin.biasAdd() : lin.node();
        int index = biasIndex(reader, lin);
        scaleInput(builder(g, reader, module), reader, index, l, module);
      }
    }
    return List.of(new Entry(l.name(), METHOD, module, "l"));
  }

  /** Replaces input {@code i} of {@code reader} by Mul(input, scale), a merge node. */
  private static void scaleInput(GraphBuilder b, Node reader, int i, Value scale, String module) {
    b.op("Mul", reader.input(i), scale);
    Node merge = tag(b.lastNode(), module, GraftTags.MERGE);
    reader.setInput(i, merge.output());
  }

  /** Which input of {@code reader} carries the linear's bias (behind earlier merges). */
  static int biasIndex(Node reader, LinearModule lin) {
    if (reader == lin.node()) return 2;
    for (int i = 0; i < reader.inputCount(); i++) {
      if (GraftTags.origin(reader.input(i)) == lin.bias().get()) return i;
    }
    throw new IllegalStateException(
        "The bias of '" + lin.name() + "' is not an input of '" + reader.displayName() + "'. Discover the modules again.");
  }

  private static GraphBuilder builder(Graph g, Node before, String module) {
    return GraphBuilder.on(g).before(before).prefix("/graft/" + METHOD + "/" + module);
  }

  private static Node tag(Node n, String module, String role) {
    return GraftTags.tag(n, METHOD, module, role);
  }
}
