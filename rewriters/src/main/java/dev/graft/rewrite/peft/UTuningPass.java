package dev.graft.rewrite.peft;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMultiset;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.rewrite.ConfiguredPlannedPass;
import dev.graft.rewrite.ModuleNames;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.TrainableRegistry.Entry;
import dev.graft.rewrite.discover.AttentionModule;
import dev.graft.rewrite.discover.FeedForwardModule;
import dev.graft.rewrite.discover.Module;
import dev.graft.rewrite.discover.ModuleDiscovery;
import dev.graft.rewrite.discover.NormModule;
import dev.graft.rewrite.discover.ResidualModule;
import dev.graft.rewrite.peft.BottleneckAdapter.Form;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.Set;

/**
 * U-Tuning (Jiang et al. 2023, "Rethinking Efficient Tuning Methods from a Unified Perspective"):
 * a tuner U attached to a frozen operation OP, in parallel, {@code OP(x) + s·U(x)}, or in
 * sequence, {@code U(OP(x))}. The adapter, prefix and prompt passes are its special cases, and
 * this pass is built from their pieces:
 *
 * <pre>
 *   U = bottleneck, OP = attention | ffn | block, sequential   y => y + up(act(down(y)))      (Houlsby, Pfeiffer)
 *   U = bottleneck, OP = attention | ffn | block, parallel     y => y + s·up(act(down(x)))   (parallel adapter)
 *   U = prefix,     OP = attention, parallel                    keys and values gain L learned rows (prefix tuning)
 *   U = prompt,     OP = block (layer 0), sequential            the block input gains P learned rows (prompt tuning)
 * </pre>
 *
 * For OP = attention or ffn, x is the block's input and y its output projection's result before
 * the residual add; for OP = block (a whole layer, named {@code layer.N}), x is the stream entering
 * the layer and y the stream leaving it (after its last norm in a post-norm encoder). The prefix
 * branch ignores s: its softmax already weighs it against the frozen attention.
 */
public final class UTuningPass extends ConfiguredPlannedPass<UTuningPass.Config> {
  public static final String METHOD = "u-tuning";

  /** The frozen operation U attaches to. */
  public enum Op {
    ATTENTION,
    FFN,
    /** A whole transformer layer, attention and feed-forward with their residuals and norms. */
    BLOCK
  }

  /** The form of U. */
  public enum Tuner {
    BOTTLENECK,
    PREFIX,
    PROMPT
  }

  /**
   * U-Tuning's configuration: the operation, the form, the tuner, and the tuner's own settings
   * (only the chosen tuner's are read; s is the adapter config's scale).
   */
  public record Config(
      Op op, Form form, Tuner tuner, BottleneckAdapter.Config adapter, PrefixTuningPass.Config prefix, PromptTuningPass.Config prompt) {
    public Config {
      checkArgument(
          tuner != Tuner.PREFIX || (op == Op.ATTENTION && form == Form.PARALLEL),
          "U-Tuning's prefix tuner is a parallel branch of attention; got op %s, form %s. Use op ATTENTION, form PARALLEL.",
          op, form);
      checkArgument(
          tuner != Tuner.PROMPT || (op == Op.BLOCK && form == Form.SEQUENTIAL),
          "U-Tuning's prompt tuner acts in sequence on a block's input; got op %s, form %s. Use op BLOCK, form SEQUENTIAL.",
          op, form);
    }

    /** A bottleneck tuner with the adapter defaults. */
    public static Config bottleneck(Op op, Form form, BottleneckAdapter.Config adapter) {
      return new Config(op, form, Tuner.BOTTLENECK, adapter, PrefixTuningPass.Config.defaults(), PromptTuningPass.Config.defaults());
    }

    /** A prefix branch beside attention. */
    public static Config prefix(PrefixTuningPass.Config prefix) {
      return new Config(Op.ATTENTION, Form.PARALLEL, Tuner.PREFIX, BottleneckAdapter.Config.defaults(), prefix, PromptTuningPass.Config.defaults());
    }

    /** A prompt before the first block. */
    public static Config prompt(PromptTuningPass.Config prompt) {
      return new Config(Op.BLOCK, Form.SEQUENTIAL, Tuner.PROMPT, BottleneckAdapter.Config.defaults(), PrefixTuningPass.Config.defaults(), prompt);
    }

    String describe() {
      String u =
          switch (tuner) {
            case BOTTLENECK -> "bottleneck," + adapter.describe() + (form == Form.PARALLEL ? ",s=" + adapter.scale() : "");
            case PREFIX -> "prefix,L=" + prefix.length();
            case PROMPT -> "prompt,P=" + prompt.length();
          };
      return op.name().toLowerCase(java.util.Locale.ROOT) + "," + form.name().toLowerCase(java.util.Locale.ROOT) + "," + u;
    }
  }

  /** One operation U attaches to: its name and the values the tuner joins. */
  private record Site(String name, OptionalInt layer, Module module, Value input, Value output, long width) {}

  private final Targets targets;

  public UTuningPass(Targets targets, Config config) {
    super(METHOD, config);
    this.targets = targets;
  }

  public Targets targets() {
    return targets;
  }

  @Override
  public PassResult execute(Model model, boolean dry) {
    ImmutableList<Module> modules = ModuleDiscovery.discover(model);
    List<Site> selected = select(sites(modules));
    if (config.tuner() == Tuner.PROMPT) {
      checkArgument(
          selected.size() == 1 && selected.get(0).layer().orElse(-1) == 0,
          "%s: a prompt joins the input of the first block only; target 'layer.0', not %s",
          METHOD, selected.stream().map(Site::name).toList());
    }
    Set<String> done = TrainableRegistry.modulesOf(model, METHOD);
    ImmutableMultiset.Builder<String> changes = ImmutableMultiset.builder();
    ImmutableList.Builder<String> notes = ImmutableList.builder();
    List<Entry> entries = new ArrayList<>();
    Map<Value, Value> masks = new IdentityHashMap<>();
    long params = 0;
    for (Site s : selected) {
      if (done.contains(s.name())) {
        notes.add(s.name() + ": already has " + METHOD);
        continue;
      }
      params += parameters(s);
      changes.add(METHOD + "(" + config.describe() + ") " + s.name());
      if (dry) continue;
      switch (config.tuner()) {
        case BOTTLENECK -> entries.addAll(
            BottleneckAdapter.attach(model, METHOD, s.name(), "", config.form(), s.input(), s.output(), s.width(), config.adapter()));
        case PREFIX -> entries.addAll(PrefixTuningPass.attach(model, METHOD, (AttentionModule) s.module(), config.prefix(), masks));
        case PROMPT -> entries.addAll(PromptTuningPass.attach(model, METHOD, s.name(), modules, s.input(), s.width(), config.prompt()));
      }
    }
    if (!entries.isEmpty()) TrainableRegistry.add(model, entries);
    return new PassResult(METHOD, changes.build(), params, dry, notes.build());
  }

  private long parameters(Site s) {
    return switch (config.tuner()) {
      case BOTTLENECK -> config.adapter().parameters(s.width());
      case PREFIX -> config.prefix().parameters(s.width());
      case PROMPT -> config.prompt().length() * s.width();
    };
  }

  /** The operations of the configured kind, named as targets name them. */
  private List<Site> sites(List<Module> modules) {
    List<Site> out = new ArrayList<>();
    if (config.op() != Op.BLOCK) {
      for (Module m : modules) {
        boolean wanted = config.op() == Op.ATTENTION ? m instanceof AttentionModule : m instanceof FeedForwardModule;
        if (wanted) {
          out.add(new Site(m.name(), m.layer(), m, BottleneckAdapter.blockInput(m), BottleneckAdapter.blockOutput(m), BottleneckAdapter.blockWidth(m)));
        }
      }
      return out;
    }
    Map<String, Module> byName = new LinkedHashMap<>();
    for (Module m : modules) byName.put(m.name(), m);
    for (Module m : modules) {
      if (!(m instanceof AttentionModule a) || a.layer().isEmpty()) continue;
      String layer = "layer." + a.layer().getAsInt();
      Value in = config.tuner() == Tuner.PROMPT && a.layer().getAsInt() == 0
          ? PromptTuningPass.embeddingOutput(METHOD, modules)
          : byName.get(layer + ".attention.residual") instanceof ResidualModule r ? r.add().input(r.skipIndex()) : null;
      Value outValue = null;
      if (byName.get(layer + ".ffn.residual") instanceof ResidualModule r) {
        outValue = r.add().output();
        // Post-norm: the stream leaves the layer after the norm that follows the residual add.
        if (byName.get(layer + ".ffn.norm") instanceof NormModule n && n.input() == outValue) outValue = n.output();
      }
      if (in == null || outValue == null) continue;
      out.add(new Site(layer, a.layer(), a, in, outValue, a.query().inFeatures()));
    }
    return out;
  }

  /** The sites the targets match; an error naming them all when none does. */
  private List<Site> select(List<Site> sites) {
    List<Site> hits = new ArrayList<>();
    for (Site s : sites) {
      if (!targets.pattern().matcher(s.name()).matches()) continue;
      boolean allLayers = targets.fromLayer() == Integer.MIN_VALUE && targets.toLayer() == Integer.MAX_VALUE;
      if (allLayers || (s.layer().isPresent() && s.layer().getAsInt() >= targets.fromLayer() && s.layer().getAsInt() <= targets.toLayer())) {
        hits.add(s);
      }
    }
    if (hits.isEmpty()) {
      String kind = config.op() == Op.BLOCK ? "block" : config.op() == Op.FFN ? "feed-forward" : "attention";
      throw new IllegalArgumentException(
          METHOD + ": target '" + targets.describe() + "' matches no " + kind + " module. "
              + (sites.isEmpty()
                  ? "The model has no " + kind + " modules."
                  : "The " + kind + " modules are: " + ModuleNames.describe(sites.stream().map(Site::name).toList()) + "."));
    }
    return hits;
  }
}
