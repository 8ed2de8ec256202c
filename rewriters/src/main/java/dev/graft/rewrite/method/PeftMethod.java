package dev.graft.rewrite.method;

import static com.google.common.base.Preconditions.checkArgument;

import dev.graft.rewrite.GraphPass;
import dev.graft.rewrite.recipe.PassFactory;
import dev.graft.rewrite.recipe.PassOptions;
import java.util.List;
import java.util.Optional;
import java.util.function.Function;

/**
 * One PEFT method, defined in one place (DESIGN.md decision 10): its name, its option schema and
 * the pass those options make ({@link PassFactory}: description, default targets, options,
 * builder), how its update folds into the frozen weights or what the export keeps ({@link Fold}),
 * and how its parameters are written to adapter files besides Graft's own.
 *
 * <p>Graft's own adapter files need nothing from a method: every trainable initializer is stored
 * by name, and the base is rebuilt by replaying the recorded pass ({@link AppliedMethods}) with
 * its options as given. {@link #peft} names the layout PEFT uses for the method, where it has one.
 *
 * @param name the name recipes give ({@code method: lora})
 * @param factory description, option schema and pass builder
 * @param fold how a merged export treats the method's update
 * @param peft the method's PEFT adapter layout, for {@code adapter_model.safetensors}
 */
public record PeftMethod(String name, PassFactory factory, Fold fold, Optional<PeftLayout> peft) {
  public PeftMethod {
    checkArgument(name.matches("[a-z0-9]+(-[a-z0-9]+)*"), "Method name '%s' must be lower-case words joined by dashes", name);
  }

  public static PeftMethod of(String name, PassFactory factory, Fold fold) {
    return new PeftMethod(name, factory, fold, Optional.empty());
  }

  /**
   * A method that adapts the modules its targets select: {@code PeftMethod.of(name,
   * PassFactory.targeted(summary, defaultTargets, options, build), fold)} in one call.
   */
  public static PeftMethod targeted(
      String name, String summary, String defaultTargets, List<String> options, Function<PassOptions, GraphPass> build, Fold fold) {
    return of(name, PassFactory.targeted(summary, defaultTargets, options, build), fold);
  }

  /** A method that takes no targets (a head, a prompt): {@link PassFactory#untargeted} in one call. */
  public static PeftMethod untargeted(
      String name, String summary, List<String> options, Function<PassOptions, GraphPass> build, Fold fold) {
    return of(name, PassFactory.untargeted(summary, options, build), fold);
  }

  public PeftMethod withPeft(PeftLayout layout) {
    return new PeftMethod(name, factory, fold, Optional.of(layout));
  }

  /** One line about the method, for help texts. */
  public String description() {
    return factory.summary();
  }
}
