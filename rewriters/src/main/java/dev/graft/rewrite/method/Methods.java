package dev.graft.rewrite.method;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMap;
import com.google.common.collect.ImmutableSet;
import dev.graft.rewrite.peft.CodaPass;
import dev.graft.rewrite.peft.DoraPass;
import dev.graft.rewrite.peft.LohaPass;
import dev.graft.rewrite.peft.LokrPass;
import dev.graft.rewrite.peft.VeraPass;
import dev.graft.rewrite.recipe.PassFactory;
import dev.graft.rewrite.recipe.PassRegistry;
import java.util.Optional;

/**
 * Every PEFT method Graft knows, registered once: an explicit immutable list, no reflection. The
 * recipe reader, {@code graft rewrite --help}, {@code graft methods}, the merged export (which asks
 * each method's {@link Fold}) and the adapter export read it. To add a method, write its file
 * (pass, {@link PassFactory}, fold) and add one line here (docs/methods.md).
 */
public final class Methods {
  private Methods() {}

  private static final String DATA_PATH = "its update reads the activations, not only the weights";

  /** In the order help texts list them. */
  public static final ImmutableList<PeftMethod> STANDARD =
      ImmutableList.of(
          PeftMethod.of("lora", PassRegistry.LORA, Fold.linearBranch())
              .withPeft(new PeftLayout("LORA", ImmutableMap.of("A", "lora_A.weight", "B", "lora_B.weight"), ImmutableSet.of("A", "B"))),
          PeftMethod.of("layernorm-affine", PassRegistry.LAYERNORM_AFFINE, Fold.constants()),
          PeftMethod.of("classification-head", PassRegistry.CLASSIFICATION_HEAD, Fold.kept("a new layer on the hidden states")),
          PeftMethod.of("houlsby", PassRegistry.HOULSBY, Fold.kept(DATA_PATH)),
          PeftMethod.of("pfeiffer", PassRegistry.PFEIFFER, Fold.kept(DATA_PATH)),
          PeftMethod.of("parallel-adapter", PassRegistry.PARALLEL, Fold.kept(DATA_PATH)),
          PeftMethod.of("prefix", PassRegistry.PREFIX, Fold.kept("learned keys and values join the attention")),
          PeftMethod.of("prompt", PassRegistry.PROMPT, Fold.kept("learned positions join the sequence")),
          PeftMethod.of("u-tuning", PassRegistry.U_TUNING, Fold.kept(DATA_PATH)),
          PeftMethod.of("ia3", PassRegistry.IA3, Fold.constants()),
          PeftMethod.of("bitfit", PassRegistry.BITFIT, Fold.constants()),
          PeftMethod.of("taylor-channels", PassRegistry.TAYLOR_CHANNELS, Fold.linearBranch()),
          PeftMethod.of("full", PassRegistry.FULL, Fold.inPlace()),
          DoraPass.DEFINITION,
          CodaPass.DEFINITION,
          dev.graft.rewrite.peft.ConvLoraPass.DEFINITION,
          dev.graft.rewrite.peft.BatchNormAffinePass.DEFINITION,
          VeraPass.DEFINITION,
          LohaPass.DEFINITION,
          LokrPass.DEFINITION,
          dev.graft.rewrite.peft.ImageHeadPass.DEFINITION,
          dev.graft.rewrite.peft.VisualPromptTuningPass.DEFINITION);

  private static final ImmutableMap<String, PeftMethod> BY_NAME =
      STANDARD.stream().collect(ImmutableMap.toImmutableMap(PeftMethod::name, m -> m));

  /** The option schemas and builders by method name, for the recipe reader. */
  public static final ImmutableMap<String, PassFactory> FACTORIES =
      STANDARD.stream().collect(ImmutableMap.toImmutableMap(PeftMethod::name, PeftMethod::factory));

  public static Optional<PeftMethod> find(String name) {
    return Optional.ofNullable(BY_NAME.get(name));
  }

  /** The method called {@code name}; an error listing the methods there are when none is. */
  public static PeftMethod get(String name) {
    PeftMethod m = BY_NAME.get(name);
    checkArgument(m != null, "Unknown method '%s'; the methods are %s.", name, BY_NAME.keySet());
    return m;
  }

  /**
   * How a merged export treats nodes and trainables recorded under {@code name}. Pass names that
   * are not recipe methods (the head's pass records as {@code head}) fold as the method they
   * belong to.
   */
  public static Fold foldOf(String name) {
    if (name.equals("head")) return get("classification-head").fold();
    return find(name).map(PeftMethod::fold).orElse(Fold.kept("not a registered method"));
  }
}
