package dev.graft.rewrite.recipe;

import com.google.common.collect.ImmutableList;
import dev.graft.rewrite.peft.BitFitPass;
import dev.graft.rewrite.peft.BottleneckAdapter;
import dev.graft.rewrite.peft.ClassificationHeadPass;
import dev.graft.rewrite.peft.FullFineTuningPass;
import dev.graft.rewrite.peft.HoulsbyAdapterPass;
import dev.graft.rewrite.peft.Ia3Pass;
import dev.graft.rewrite.peft.LayerNormAffinePass;
import dev.graft.rewrite.peft.LoraPass;
import dev.graft.rewrite.peft.ParallelAdapterPass;
import dev.graft.rewrite.peft.PfeifferAdapterPass;
import dev.graft.rewrite.peft.PrefixTuningPass;
import dev.graft.rewrite.peft.PromptTuningPass;
import dev.graft.rewrite.peft.TaylorChannelPass;
import dev.graft.rewrite.peft.UTuningPass;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The option schemas and pass builders of the first-wave methods, kept together because several
 * share option readers (the bottleneck, prefix and prompt settings). The registry is {@link
 * dev.graft.rewrite.method.Methods}; a new method defines its factory in its own file and adds one
 * line there (docs/methods.md).
 */
public final class PassRegistry {
  private PassRegistry() {}

  public static final PassFactory LORA =
      PassFactory.targeted(
          "LoRA: a low-rank update A·B·alpha/r beside each targeted linear layer",
          PassFactory.QUERY_VALUE,
          LoraPass.OPTIONS,
          o -> new LoraPass(o.targets(), LoraPass.Config.read(o)));

  public static final PassFactory LAYERNORM_AFFINE =
      PassFactory.targeted(
          "LayerNorm-affine: the scale and shift of each targeted norm train through zero-initialised deltas",
          "**",
          List.of(),
          o -> new LayerNormAffinePass(o.targets()));

  public static final PassFactory CLASSIFICATION_HEAD =
      PassFactory.untargeted(
          "a classification head: pool the hidden states (mean, first or max), then a linear layer to logits",
          List.of("classes", "pooling", "hidden-output", "mask-input", "keep-hidden-output", "seed"),
          o -> {
            if (!o.has("classes")) throw o.error("option 'classes' is required (the number of classes, 2 or more)");
            ClassificationHeadPass.Config d = ClassificationHeadPass.Config.of(2, ClassificationHeadPass.Pooling.MEAN);
            return new ClassificationHeadPass(
                new ClassificationHeadPass.Config(
                    o.integer("classes", 0),
                    o.choice("pooling", ClassificationHeadPass.Pooling.class, d.pooling()),
                    o.string("hidden-output", d.hiddenOutput()),
                    o.string("mask-input", d.maskInput()),
                    o.bool("keep-hidden-output", d.keepHiddenOutput()),
                    o.longInteger("seed", d.seed())));
          });

  private static final List<String> ADAPTER = List.of("size", "reduction-factor", "activation", "init", "seed");
  private static final List<String> PARALLEL_ADAPTER =
      List.of("size", "reduction-factor", "activation", "scale", "init", "seed");

  public static final PassFactory HOULSBY =
      PassFactory.targeted(
          "Houlsby adapters: a bottleneck after the attention output and after the feed-forward of each layer",
          "layer.*.{attention,ffn}",
          ADAPTER,
          o -> new HoulsbyAdapterPass(o.targets(), adapter(o, false)));

  public static final PassFactory PFEIFFER =
      PassFactory.targeted(
          "Pfeiffer adapters: a bottleneck after each layer's feed-forward",
          "layer.*.ffn",
          ADAPTER,
          o -> new PfeifferAdapterPass(o.targets(), adapter(o, false)));

  public static final PassFactory PARALLEL =
      PassFactory.targeted(
          "parallel adapters: a scaled bottleneck beside each targeted feed-forward or attention block",
          "layer.*.ffn",
          PARALLEL_ADAPTER,
          o -> new ParallelAdapterPass(o.targets(), adapter(o, true)));

  public static final PassFactory PREFIX =
      PassFactory.targeted(
          "prefix tuning: learned key and value prefixes in each targeted attention block",
          "layer.*.attention",
          List.of("length", "reparam-hidden", "init-std", "seed"),
          o -> new PrefixTuningPass(o.targets(), prefix(o)));

  public static final PassFactory PROMPT =
      PassFactory.untargeted(
          "prompt tuning: learned soft-prompt vectors before the embedding output",
          List.of("length", "keep-prompt-positions", "init-std", "seed"),
          o -> new PromptTuningPass(prompt(o)));

  /** Which U-Tuning options belong to which tuner, so that a stray one is an error, not ignored. */
  private static final Map<UTuningPass.Tuner, Set<String>> U_TUNER_OPTIONS =
      Map.of(
          UTuningPass.Tuner.BOTTLENECK, Set.of("size", "reduction-factor", "activation", "scale", "init"),
          UTuningPass.Tuner.PREFIX, Set.of("length", "reparam-hidden", "init-std"),
          UTuningPass.Tuner.PROMPT, Set.of("length", "keep-prompt-positions", "init-std"));

  public static final PassFactory U_TUNING =
      PassFactory.targeted(
          "U-Tuning: a tuner (bottleneck, prefix or prompt) attached to a frozen operation, in parallel or in sequence",
          "**",
          List.of(
              "op", "form", "tuner", "size", "reduction-factor", "activation", "scale", "init", "length",
              "reparam-hidden", "init-std", "keep-prompt-positions", "seed"),
          o -> {
            UTuningPass.Tuner tuner = o.choice("tuner", UTuningPass.Tuner.class, UTuningPass.Tuner.BOTTLENECK);
            for (Map.Entry<UTuningPass.Tuner, Set<String>> e : U_TUNER_OPTIONS.entrySet()) {
              for (String key : e.getValue()) {
                if (o.has(key) && !U_TUNER_OPTIONS.get(tuner).contains(key)) {
                  throw o.error(
                      "option '" + key + "' does not apply to tuner " + PassOptions.spell(tuner) + "; its options are "
                          + ImmutableList.sortedCopyOf(U_TUNER_OPTIONS.get(tuner)) + ", op, form, tuner and seed");
                }
              }
            }
            UTuningPass.Op op =
                o.choice("op", UTuningPass.Op.class, tuner == UTuningPass.Tuner.PROMPT ? UTuningPass.Op.BLOCK : UTuningPass.Op.ATTENTION);
            BottleneckAdapter.Form form =
                o.choice(
                    "form",
                    BottleneckAdapter.Form.class,
                    tuner == UTuningPass.Tuner.PROMPT ? BottleneckAdapter.Form.SEQUENTIAL : BottleneckAdapter.Form.PARALLEL);
            return new UTuningPass(
                o.targets(), new UTuningPass.Config(op, form, tuner, adapter(o, true), prefix(o), prompt(o)));
          });

  public static final PassFactory IA3 =
      PassFactory.targeted(
          "IA3: learned scaling vectors on keys, values and the feed-forward activation",
          Ia3Pass.DEFAULT_TARGETS,
          List.of(),
          o -> new Ia3Pass(o.targets()));

  public static final PassFactory BITFIT =
      PassFactory.targeted(
          "BitFit: only the biases of linear layers and the shifts of norms train",
          "**",
          List.of(),
          o -> new BitFitPass(o.targets()));

  /**
   * The channel lists come from the trainer (TaylorScores): a recipe either carries them as data
   * ({@code channels:}) or says how the trainer should pick them ({@code select:}, a
   * {@link TaylorSelection} that {@link Recipe} lifts into its stage).
   */
  public static final PassFactory TAYLOR_CHANNELS =
      PassFactory.untargeted(
          "Taylor-importance channel tuning: only the chosen output channels of each named linear layer train",
          List.of("channels", "select", "init-std", "seed"),
          o -> {
            boolean listed = o.has("channels");
            boolean select = o.has("select");
            if (listed && select) {
              throw o.error("give 'channels' (the lists) or 'select' (how training picks them), not both");
            }
            if (!listed && !select) {
              throw o.error("option 'channels' or 'select' is required: a map from linear module names to their"
                  + " channel lists, e.g. {layer.5.ffn.down: [3, 17, 42]}, or a selection by Taylor scores at"
                  + " training time, e.g. {targets: layer.*.ffn.down, fraction: 0.125, batches: 8}");
            }
            double initStd = o.number("init-std", 0);
            long seed = o.longInteger("seed", 0);
            if (select) return TaylorSelection.read(o.nested("select", TaylorSelection.SCHEMA).orElseThrow(), initStd, seed);
            return new TaylorChannelPass(new TaylorChannelPass.Config(o.integerLists("channels"), initStd, seed));
          });

  public static final PassFactory FULL =
      PassFactory.targeted(
          "full fine-tuning: every parameter of the targeted linears, norms and embeddings trains itself (no delta)",
          "**",
          List.of(),
          o -> new FullFineTuningPass(o.targets()));

  /** The bottleneck settings; {@code withScale} for the forms that read s (parallel). */
  private static BottleneckAdapter.Config adapter(PassOptions o, boolean withScale) {
    if (o.has("size") && o.has("reduction-factor")) {
      throw o.error("give the bottleneck as 'size' or as 'reduction-factor', not both");
    }
    BottleneckAdapter.Config d = BottleneckAdapter.Config.defaults();
    return new BottleneckAdapter.Config(
        o.integer("size", 0),
        o.has("size") ? d.reductionFactor() : o.integer("reduction-factor", d.reductionFactor()),
        o.choice("activation", BottleneckAdapter.Activation.class, d.activation()),
        withScale ? o.number("scale", d.scale()) : d.scale(),
        o.choice("init", BottleneckAdapter.Init.class, d.init()),
        o.longInteger("seed", d.seed()));
  }

  private static PrefixTuningPass.Config prefix(PassOptions o) {
    PrefixTuningPass.Config d = PrefixTuningPass.Config.defaults();
    return new PrefixTuningPass.Config(
        o.integer("length", d.length()),
        o.has("reparam-hidden"),
        o.integer("reparam-hidden", d.reparamHidden()),
        o.number("init-std", d.initStd()),
        o.longInteger("seed", d.seed()));
  }

  private static PromptTuningPass.Config prompt(PassOptions o) {
    PromptTuningPass.Config d = PromptTuningPass.Config.defaults();
    return new PromptTuningPass.Config(
        o.integer("length", d.length()),
        o.bool("keep-prompt-positions", d.keepPromptPositions()),
        o.number("init-std", d.initStd()),
        o.longInteger("seed", d.seed()));
  }
}
