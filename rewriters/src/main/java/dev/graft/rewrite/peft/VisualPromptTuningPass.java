package dev.graft.rewrite.peft;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMultiset;
import dev.graft.ir.Constants;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Use;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.rewrite.ConfiguredPlannedPass;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.Splice;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.TrainableRegistry.Entry;
import dev.graft.rewrite.discover.Module;
import dev.graft.rewrite.discover.ModuleDiscovery;
import dev.graft.rewrite.discover.ResidualModule;
import dev.graft.rewrite.method.Fold;
import dev.graft.rewrite.method.PeftMethod;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.TreeMap;

/**
 * Visual prompt tuning (Jia et al. 2022, VPT): P learned tokens join a ViT's sequence after the
 * patch embedding and the position embedding, behind the class token, so the class-token head
 * still reads position 0. Shallow: one prompt enters the first block. Deep: every block gets its
 * own prompt, which takes the place of the previous block's outputs at the prompt positions.
 *
 * <pre>
 *   h0 = Add(Concat(cls, patches, axis 1), pos)                 [b, 1+N, D]
 *     => h0' = Concat(h0[:, :1], Expand(prompt.0[1, P, D]), h0[:, 1:], axis 1)       [b, 1+P+N, D]
 *   deep, block i > 0:  hi' = Concat(hi[:, :1], Expand(prompt.i), hi[:, 1+P:], axis 1)
 *   every [b, S, D] output  =>  Concat(out[:, :1], out[:, 1+P:], axis 1)           (unless kept)
 * </pre>
 *
 * The insertion itself is prompt tuning's ({@link PromptTuningPass#attach}, with the class token
 * kept ahead of the prompt). The tokens kept ahead are found from the graph: the inputs of the
 * Concat that builds the embedded sequence, all but its last (the patches); a ViT without a class
 * token gets the prompt at the front. A ViT's attention takes no mask, so a model whose attention
 * does is refused (its mask would not line up); prompt tuning is the method for text encoders.
 *
 * <p>No prompt is an identity: attention mixes the prompt into every token. The outputs equal the
 * base model's run on the longer sequence with the prompt positions then cut out, which the test
 * checks against ORT on the cut base graph. Modules: {@code layer.N} (the prompt entering block
 * N).
 */
public final class VisualPromptTuningPass extends ConfiguredPlannedPass<VisualPromptTuningPass.Config> {
  public static final String METHOD = "vpt";

  /**
   * VPT's settings.
   *
   * @param prompt length, kept positions, init std and seed, as prompt tuning's
   * @param deep a prompt for every block, not only the first
   * @param leading the positions kept ahead of the prompt; empty finds them from the graph
   */
  public record Config(PromptTuningPass.Config prompt, boolean deep, OptionalInt leading) {
    /** Shallow, P = 10, std 0.02, the class token found from the graph. */
    public static Config defaults() {
      return new Config(PromptTuningPass.Config.defaults().withLength(10), false, OptionalInt.empty());
    }

    public Config withDeep(boolean d) {
      return new Config(prompt, d, leading);
    }

    public Config withPrompt(PromptTuningPass.Config p) {
      return new Config(p, deep, leading);
    }
  }

  /** The method: {@code length}, {@code deep}, {@code leading}, {@code keep-prompt-positions}, {@code init-std}, {@code seed}. */
  public static final PeftMethod DEFINITION =
      PeftMethod.untargeted(
          METHOD,
          "visual prompt tuning: learned tokens after a ViT's class token, entering the first block (deep: every block)",
          List.of("length", "deep", "leading", "keep-prompt-positions", "init-std", "seed"),
          o -> {
            Config d = defaults();
            PromptTuningPass.Config p =
                new PromptTuningPass.Config(
                    o.integer("length", d.prompt().length()),
                    o.bool("keep-prompt-positions", false),
                    o.number("init-std", d.prompt().initStd()),
                    o.longInteger("seed", 0));
            OptionalInt leading = o.has("leading") ? OptionalInt.of(o.integer("leading", 0)) : OptionalInt.empty();
            if (leading.isPresent() && leading.getAsInt() < 0) throw o.error("'leading' must be 0 or more, got " + leading.getAsInt());
            return new VisualPromptTuningPass(new Config(p, o.bool("deep", false), leading));
          },
          Fold.kept("learned tokens join the sequence"));

  private static Config defaults() {
    return Config.defaults();
  }

  public VisualPromptTuningPass(Config config) {
    super(METHOD, config);
  }

  @Override
  public PassResult execute(Model model, boolean dry) {
    ImmutableList<Module> modules = ModuleDiscovery.discover(model);
    TreeMap<Integer, Value> blockInputs = blockInputs(modules);
    if (TrainableRegistry.has(model, METHOD, "layer.0")) return PassResult.unchanged(METHOD, dry, "layer.0: already has " + METHOD);
    long hidden = PromptTuningPass.width(modules);
    Value stream = blockInputs.get(0);
    int leading = config.leading().orElseGet(() -> tokensAhead(stream));
    int p = config.prompt().length();
    List<Integer> layers = config.deep() ? List.copyOf(blockInputs.keySet()) : List.of(0);
    ImmutableMultiset.Builder<String> changes = ImmutableMultiset.builder();
    for (int layer : layers) changes.add(METHOD + "(P=" + p + ",after=" + leading + ") layer." + layer);
    long params = layers.size() * p * hidden;
    if (dry) return new PassResult(METHOD, changes.build(), params, true);

    List<Entry> entries = new ArrayList<>();
    entries.addAll(PromptTuningPass.attach(model, METHOD, "layer.0", modules, stream, hidden, config.prompt(), leading));
    for (int layer : layers) {
      if (layer == 0) continue;
      entries.add(replaceAt(model, "layer." + layer, blockInputs.get(layer), hidden, leading));
    }
    TrainableRegistry.add(model, entries);
    return new PassResult(METHOD, changes.build(), params, false);
  }

  /** Deep VPT at block {@code module}: its input's prompt positions are replaced by a prompt of its own. */
  private Entry replaceAt(Model model, String module, Value h, long hidden, int leading) {
    int p = config.prompt().length();
    Value prompt =
        Splice.initializer(
            model.graph(),
            module + "." + METHOD,
            DenseTensor.ofFloats(null, new long[] {1, p, hidden}, PromptTuningPass.initialValues(config.prompt(), module + METHOD, p, hidden)));
    List<Use> readers = h.uses();
    GraphBuilder b = Splice.afterProducerOf(h, model.graph()).prefix("/graft/" + METHOD + "/" + module);
    Value replaced = PromptTuningPass.insert(b, METHOD, module, h, prompt, leading, leading + p);
    for (Use u : readers) u.node().setInput(u.index(), replaced);
    return new Entry(prompt.name(), METHOD, module, "prompt");
  }

  /** The stream entering each block: the skip of its attention residual, by layer. */
  private static TreeMap<Integer, Value> blockInputs(List<Module> modules) {
    TreeMap<Integer, Value> out = new TreeMap<>();
    for (Module m : modules) {
      if (m instanceof ResidualModule r && r.layer().isPresent() && r.name().equals("layer." + r.layer().getAsInt() + ".attention.residual")) {
        out.put(r.layer().getAsInt(), r.add().input(r.skipIndex()));
      }
    }
    checkArgument(
        out.containsKey(0),
        "%s: found no transformer block to prompt: the model has no 'layer.0.attention.residual'. Visual prompt tuning"
            + " needs a ViT (for a CNN, use conv-lora, batchnorm-affine or full).",
        METHOD);
    return out;
  }

  /**
   * The tokens ahead of the patches: where the embedded sequence is {@code Add(Concat(t1, ..,
   * patches, axis 1), pos)} (or the Concat alone), the summed lengths of t1.. (a class token: 1);
   * otherwise 0.
   */
  static int tokensAhead(Value stream) {
    Optional<Node> producer = stream.producer();
    if (producer.isEmpty()) return 0;
    Node n = producer.get();
    if (n.opType().equals("Add")) {
      for (Value in : n.inputs()) {
        Optional<Node> p = in.producer();
        if (p.isPresent() && p.get().opType().equals("Concat")) {
          n = p.get();
          break;
        }
      }
    }
    if (!n.opType().equals("Concat") || n.inputs().size() < 2) return 0;
    long axis = n.attrLong("axis", 0);
    if (axis != 1 && axis != -2) return 0;
    int ahead = 0;
    for (Value in : n.inputs().subList(0, n.inputs().size() - 1)) {
      OptionalInt len = lengthOf(in);
      if (len.isEmpty()) return 0;
      ahead += len.getAsInt();
    }
    return ahead;
  }

  /** The sequence length of a token block: from its static shape, or from the constant an Expand broadcasts. */
  private static OptionalInt lengthOf(Value v) {
    if (v.shape().isPresent() && v.shape().get().rank() == 3 && v.shape().get().dim(1).isFixed()) {
      return OptionalInt.of(Math.toIntExact(v.shape().get().dim(1).value()));
    }
    Optional<Node> p = v.producer();
    if (p.isPresent() && p.get().opType().equals("Expand")) {
      Optional<long[]> dims = Constants.valueOf(p.get().input(0)).map(t -> t.dims());
      if (dims.isPresent() && dims.get().length == 3) return OptionalInt.of(Math.toIntExact(dims.get()[1]));
    }
    return OptionalInt.empty();
  }
}
