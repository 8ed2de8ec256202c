package dev.graft.rewrite.recipe;

import com.google.common.collect.ImmutableMap;
import dev.graft.rewrite.peft.ClassificationHeadPass;
import dev.graft.rewrite.peft.LayerNormAffinePass;
import dev.graft.rewrite.peft.LoraPass;
import java.util.List;

/**
 * The recipe methods Graft knows, by the name a recipe's {@code method:} gives: an explicit map,
 * no reflection. To add a method, add one entry to {@link #STANDARD} (its options, its default
 * targets, and how they make the pass), an example in {@code examples/recipes/<method>.yaml}, and
 * nothing else: validation, error messages and the CLI read the options from here.
 */
public final class PassRegistry {
  private PassRegistry() {}

  static final PassFactory LORA =
      PassFactory.targeted(
          "LoRA: a low-rank update A·B·alpha/r beside each targeted linear layer",
          "layer.*.attention.{query,value}",
          List.of("rank", "alpha", "rslora", "dropout", "init", "seed"),
          o -> {
            LoraPass.Config d = LoraPass.Config.defaults();
            return new LoraPass(
                o.targets(),
                new LoraPass.Config(
                    o.integer("rank", d.rank()),
                    o.number("alpha", d.alpha()),
                    o.bool("rslora", d.rsLora()),
                    o.number("dropout", d.dropout()),
                    o.choice("init", LoraPass.Init.class, d.init()),
                    o.longInteger("seed", d.seed())));
          });

  static final PassFactory LAYERNORM_AFFINE =
      PassFactory.targeted(
          "LayerNorm-affine: the scale and shift of each targeted norm train through zero-initialised deltas",
          "**",
          List.of(),
          o -> new LayerNormAffinePass(o.targets()));

  static final PassFactory CLASSIFICATION_HEAD =
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

  /** Every method, in the order help texts list them. */
  public static final ImmutableMap<String, PassFactory> STANDARD =
      ImmutableMap.<String, PassFactory>builder()
          .put("lora", LORA)
          .put("layernorm-affine", LAYERNORM_AFFINE)
          .put("classification-head", CLASSIFICATION_HEAD)
          .buildOrThrow();
}
