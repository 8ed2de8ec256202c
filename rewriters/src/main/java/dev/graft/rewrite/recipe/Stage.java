package dev.graft.rewrite.recipe;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import dev.graft.rewrite.GraphPass;
import java.util.List;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * One stage of a recipe: passes applied to the model as the stage before left it (with its
 * trained values), then, if the stage has one, a {@link TaylorSelection} resolved on that model,
 * then training of every trainable parameter so far for {@code epochs}. A recipe with plain
 * {@code passes:} is one stage.
 *
 * @param name for progress messages and metrics ({@code stage 1} unless the recipe names it)
 * @param passes applied in order, before the selection; no {@link TaylorSelection} among them
 * @param epochs how long the stage trains; empty: the run's epochs
 * @param taylor the deferred channel selection, resolved after {@code passes}
 */
public record Stage(String name, ImmutableList<GraphPass> passes, OptionalInt epochs, Optional<TaylorSelection> taylor) {

  public Stage {
    checkArgument(!name.isBlank(), "a stage needs a name");
    checkArgument(
        !passes.isEmpty() || taylor.isPresent(), "Stage '%s' has nothing to apply: give it passes", name);
    checkArgument(
        epochs.isEmpty() || epochs.getAsInt() >= 1, "Stage '%s': epochs must be at least 1, got %s", name, epochs);
    for (GraphPass p : passes) {
      checkArgument(
          !(p instanceof TaylorSelection),
          "Stage '%s': a Taylor selection runs after the stage's passes; give it as the stage's taylor,"
              + " not among its passes",
          name);
    }
  }

  /** A stage of {@code passes} that trains for the run's epochs. */
  public static Stage of(String name, List<? extends GraphPass> passes) {
    return new Stage(name, ImmutableList.copyOf(passes), OptionalInt.empty(), Optional.empty());
  }

  /** The stage's epochs, or {@code runEpochs} when the recipe gives none. */
  public int epochsOr(int runEpochs) {
    return epochs.orElse(runEpochs);
  }
}
