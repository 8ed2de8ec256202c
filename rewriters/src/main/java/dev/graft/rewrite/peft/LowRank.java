package dev.graft.rewrite.peft;

import dev.graft.rewrite.recipe.PassOptions;
import java.util.List;

/**
 * The settings DoRA and LoHa share with LoRA: the rank r, alpha (the update is scaled by alpha / r)
 * and the seed of the random start. Their {@code Config} records implement it by having these
 * components, so one reader serves both recipe entries.
 */
public interface LowRank {
  /** The recipe options, in the order help texts list them. */
  List<String> OPTIONS = List.of("rank", "alpha", "seed");

  int rank();

  double alpha();

  long seed();

  /** A method's settings record from the three values (its canonical constructor). */
  @FunctionalInterface
  interface Maker<C extends LowRank> {
    C make(int rank, double alpha, long seed);
  }

  /** The {@link #OPTIONS} of a recipe entry, each defaulting to {@code defaults}'. */
  static <C extends LowRank> C read(PassOptions o, C defaults, Maker<C> maker) {
    return maker.make(
        o.integer("rank", defaults.rank()), o.number("alpha", defaults.alpha()), o.longInteger("seed", defaults.seed()));
  }
}
