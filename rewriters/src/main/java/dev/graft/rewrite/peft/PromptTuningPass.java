package dev.graft.rewrite.peft;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMultiset;
import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Dim;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.ir.Node;
import dev.graft.ir.Shape;
import dev.graft.ir.Type;
import dev.graft.ir.Use;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.rewrite.ConfiguredPlannedPass;
import dev.graft.rewrite.GraftTags;
import dev.graft.rewrite.ModuleNames;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.Splice;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.TrainableRegistry.Entry;
import dev.graft.rewrite.discover.AttentionModule;
import dev.graft.rewrite.discover.Module;
import dev.graft.rewrite.discover.ModuleDiscovery;
import dev.graft.rewrite.discover.NormModule;
import dev.graft.rewrite.discover.ResidualModule;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Prompt tuning (Lester et al. 2021): P learned vectors prepended to the embedding output, so
 * every layer sees P extra positions that no token chose.
 *
 * <pre>
 *   h0 = embeddings(ids)        [b, S, hidden]
 *     => h0' = Concat(Expand(prompt[1, P, hidden], [b, 1, 1]), h0, axis 1)     [b, P+S, hidden]
 *   every attention mask        [b, 1, 1, S]  =>  Concat(zeros [b, 1, 1, P], mask, axis 3)
 *   every [b, S', hidden] graph output  =>  Slice(out, P.., axis 1)              (unless kept)
 * </pre>
 *
 * The prompt joins after the embeddings (word, position and token type, and the embedding norm
 * when there is one), so the real tokens keep their positions and the prompt vectors get none.
 * The masks are extended in the additive domain (zero = attend), so padded tokens stay ignored
 * and every token attends to the prompt. By default the prompt positions are sliced off the
 * outputs, so {@code last_hidden_state} keeps its shape [b, S, hidden]; {@code
 * keepPromptPositions} keeps them (the output is then [b, P+S, hidden]). Run this pass before a
 * classification head, whose pooling reads the original mask.
 *
 * <p>The pass adapts the model as a whole; its one module is {@value #MODULE}.
 */
public final class PromptTuningPass extends ConfiguredPlannedPass<PromptTuningPass.Config> {
  public static final String METHOD = "prompt";
  public static final String MODULE = "embeddings";

  /**
   * Prompt tuning's hyperparameters.
   *
   * @param length P, the number of prompt vectors
   * @param keepPromptPositions leave the prompt positions in the outputs
   * @param initStd the standard deviation of the prompt at the start
   */
  public record Config(int length, boolean keepPromptPositions, double initStd, long seed) {
    public Config {
      checkArgument(length > 0, "Prompt length must be positive, got %s", length);
      checkArgument(initStd >= 0, "Prompt init std must not be negative, got %s", initStd);
    }

    /** P = 20, positions sliced off, std 0.02, seed 0. */
    public static Config defaults() {
      return new Config(20, false, 0.02, 0);
    }

    public Config withLength(int p) {
      return new Config(p, keepPromptPositions, initStd, seed);
    }

    public Config withKeepPromptPositions(boolean keep) {
      return new Config(length, keep, initStd, seed);
    }

    public Config withInitStd(double std) {
      return new Config(length, keepPromptPositions, std, seed);
    }

    public Config withSeed(long s) {
      return new Config(length, keepPromptPositions, initStd, s);
    }
  }

  public PromptTuningPass(Config config) {
    super(METHOD, config);
  }

  @Override
  public PassResult execute(Model model, boolean dry) {
    ImmutableList<Module> modules = ModuleDiscovery.discover(model);
    if (TrainableRegistry.has(model, METHOD, MODULE)) return PassResult.unchanged(METHOD, dry, MODULE + ": already has " + METHOD);
    Value stream = embeddingOutput(METHOD, modules);
    long hidden = width(modules);
    ImmutableMultiset<String> changes = ImmutableMultiset.of(METHOD + "(P=" + config.length() + ") " + MODULE);
    long params = config.length() * hidden;
    if (dry) return new PassResult(METHOD, changes, params, true);
    List<Entry> entries = attach(model, METHOD, MODULE, modules, stream, hidden, config);
    TrainableRegistry.add(model, entries);
    return new PassResult(METHOD, changes, params, false);
  }

  /**
   * The hidden state entering the first layer: the embedding norm's output, else the skip of the
   * first attention residual. An error listing the modules when there is neither.
   */
  static Value embeddingOutput(String method, List<Module> modules) {
    for (Module m : modules) if (m instanceof NormModule n && n.name().equals("embeddings.norm")) return n.output();
    for (Module m : modules) {
      if (m instanceof ResidualModule r && r.name().equals("layer.0.attention.residual")) return r.add().input(r.skipIndex());
    }
    throw new IllegalArgumentException(
        method + ": found no embedding output to prepend the prompt to: the model has no 'embeddings.norm' and no"
            + " 'layer.0.attention.residual'. Its modules are: "
            + ModuleNames.describe(modules.stream().map(Module::name).toList())
            + ". Prompt tuning needs a transformer encoder.");
  }

  static long width(List<Module> modules) {
    return modules.stream()
        .filter(m -> m instanceof AttentionModule)
        .map(m -> ((AttentionModule) m).query().inFeatures())
        .findFirst()
        .orElseThrow(() -> new IllegalArgumentException("prompt: the model has no attention block to prompt."));
  }

  /** Prepends the prompt to {@code stream}, extends every mask, slices the outputs; returns the trainable. */
  static List<Entry> attach(
      Model model, String method, String module, List<Module> modules, Value stream, long hidden, Config config) {
    return attach(model, method, module, modules, stream, hidden, config, 0);
  }

  /**
   * Inserts the prompt into {@code stream} after its first {@code leading} positions (0:
   * prepends it; 1: after a ViT's class token, as visual prompt tuning places it), extends every
   * mask, and cuts the prompt positions out of the hidden-state outputs unless they are kept;
   * returns the trainable.
   *
   * <pre>
   *   leading = 0:  Concat(Expand(prompt), h, axis 1)
   *   leading = k:  Concat(Slice(h, 0..k), Expand(prompt), Slice(h, k..), axis 1)
   *   outputs:      Slice(out, P..)  or  Concat(Slice(out, 0..k), Slice(out, k+P..), axis 1)
   * </pre>
   */
  static List<Entry> attach(
      Model model, String method, String module, List<Module> modules, Value stream, long hidden, Config config, int leading) {
    WorkingModels.requireWorkingOpset(model, "Pass '" + method + "'");
    checkArgument(leading >= 0, "%s: the positions kept ahead of the prompt must not be negative, got %s", method, leading);
    checkArgument(
        leading == 0 || modules.stream().noneMatch(m -> m instanceof AttentionModule a && a.maskAdd() != null),
        "%s: the model's attention takes a mask, and a prompt after the first %s positions would shift it; insert the"
            + " prompt at the front (method prompt) for a masked text encoder.",
        method, leading);
    Graph g = model.graph();
    int p = config.length();
    Value prompt = Splice.initializer(g, module + "." + method, DenseTensor.ofFloats(null, new long[] {1, p, hidden}, initialValues(config, module + method, p, hidden)));

    List<Use> readers = stream.uses();
    GraphBuilder b = Splice.afterProducerOf(stream, g).prefix("/graft/" + method + "/" + module);
    Value joined = insert(b, method, module, stream, prompt, leading, leading);
    for (Use u : readers) u.node().setInput(u.index(), joined);

    Map<Value, Value> masks = new IdentityHashMap<>();
    for (Module m : modules) {
      if (m instanceof AttentionModule a && a.maskAdd() != null) {
        PrefixTuningPass.extendMask(model, method, module, a, p, true, masks);
      }
    }

    // The sequence axis of every hidden-state output is now P longer.
    for (Value out : new ArrayList<>(g.outputs())) {
      Shape s = out.shape().orElse(null);
      if (s == null || s.rank() != 3 || !s.dims().get(2).equals(Dim.of(hidden))) continue;
      Type unknownSequence = Type.tensor(DataType.FLOAT, Shape.of(s.dims().get(0), Dim.unknown(), s.dims().get(2)));
      if (config.keepPromptPositions()) {
        out.setType(unknownSequence);
        continue;
      }
      GraphBuilder after = Splice.after(out.producer().orElseThrow()).prefix("/graft/" + method + "/" + module);
      if (leading > 0) {
        cutOut(g, after, method, module, out, leading, p, s);
        out.setType(unknownSequence);
        continue;
      }
      Node slice = after.node("", "Slice", 1, List.of(out, b.int64s(p), b.int64s(Long.MAX_VALUE), b.int64s(1)));
      GraftTags.tag(slice, method, module, "slice");
      Splice.wrap(out, slice);
      out.setType(unknownSequence); // the renamed inner value
    }
    return List.of(new Entry(prompt.name(), method, module, "prompt"));
  }
  /**
   * The prompt inserted into {@code h} after its first {@code leading} positions, in place of the
   * {@code replaced} positions that follow them (0: a pure insertion). Used for the first layer
   * (replaced = 0) and, by deep visual prompt tuning, for later layers (replaced = P: the previous
   * layer's prompt outputs give way to this layer's prompt).
   *
   * <pre>
   *   Concat(Slice(h, 0..leading), Expand(prompt, [batch, 1, 1]), Slice(h, leading+replaced..), axis 1)
   * </pre>
   */
  static Value insert(GraphBuilder b, String method, String module, Value h, Value prompt, int leading, int replacedFrom) {
    Value batch = tag(b, method, module, "shape", b.op("Shape", h));
    batch = tag(b, method, module, "shape", b.op("Slice", batch, b.int64s(0), b.int64s(1), b.int64s(0)));
    batch = tag(b, method, module, "batch_shape", b.op("Concat", List.of(batch, b.int64s(1, 1)), Attr.of("axis", 0L)));
    Value expanded = tag(b, method, module, "prompt_batch", b.op("Expand", prompt, batch));
    if (leading == 0 && replacedFrom == 0) {
      return tag(b, method, module, "prepend", b.op("Concat", List.of(expanded, h), Attr.of("axis", 1L)));
    }
    List<Value> parts = new ArrayList<>();
    if (leading > 0) parts.add(tag(b, method, module, "leading", b.op("Slice", h, b.int64s(0), b.int64s(leading), b.int64s(1))));
    parts.add(expanded);
    parts.add(tag(b, method, module, "rest", b.op("Slice", h, b.int64s(replacedFrom), b.int64s(Long.MAX_VALUE), b.int64s(1))));
    return tag(b, method, module, "insert", b.op("Concat", parts, Attr.of("axis", 1L)));
  }

  /** P x hidden values drawn from N(0, initStd²), seeded by the config and the site. */
  static float[] initialValues(Config config, String site, int p, long hidden) {
    SplittableRandom random = new SplittableRandom(config.seed() ^ site.hashCode() * 0x9E3779B97F4A7C15L);
    float[] init = new float[Math.toIntExact(p * hidden)];
    for (int i = 0; i < init.length; i++) init[i] = (float) (random.nextGaussian() * config.initStd());
    return init;
  }

  /**
   * Cuts positions leading..leading+P out of the output {@code out}: its readers, and the graph
   * output of its name, get {@code Concat(Slice(out, 0..leading), Slice(out, leading+P..))}.
   */
  private static void cutOut(Graph g, GraphBuilder b, String method, String module, Value out, int leading, int p, Shape shape) {
    Value head = tag(b, method, module, "slice", b.op("Slice", out, b.int64s(0), b.int64s(leading), b.int64s(1)));
    Value tail = tag(b, method, module, "slice", b.op("Slice", out, b.int64s(leading + p), b.int64s(Long.MAX_VALUE), b.int64s(1)));
    Value cut = tag(b, method, module, "cut", b.op("Concat", List.of(head, tail), Attr.of("axis", 1L)));
    Node headNode = head.producer().orElseThrow();
    Node tailNode = tail.producer().orElseThrow();
    for (Use u : out.uses()) {
      if (u.node() != headNode && u.node() != tailNode) u.node().setInput(u.index(), cut);
    }
    if (out.isGraphOutput()) {
      int i = g.outputs().indexOf(out);
      String name = out.name();
      g.rename(out, g.freshName(name + "_inner"));
      g.rename(cut, name);
      g.setOutput(i, cut);
    }
    cut.setType(Type.tensor(DataType.FLOAT, shape));
  }

  private static Value tag(GraphBuilder b, String method, String module, String role, Value made) {
    GraftTags.tag(b.lastNode(), method, module, role);
    return made;
  }
}
