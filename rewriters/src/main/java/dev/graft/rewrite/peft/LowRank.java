package dev.graft.rewrite.peft;

import dev.graft.rewrite.ConfiguredPass;
import dev.graft.rewrite.recipe.PassOptions;
import java.util.List;

/**
 * The settings the low-rank methods share: the rank r, alpha (the update is scaled by alpha / r)
 * and the seed of the random start. LoRA's, DoRA's, LoHa's and LoKr's {@code Config} records
 * implement it by having these components, so each change line shows the rank, and one reader
 * serves DoRA's and LoHa's recipe entries.
 */
public interface LowRank extends ConfiguredPass.Ranked {
  /** The recipe options, in the order help texts list them. */
  List<String> OPTIONS = List.of("rank", "alpha", "seed");

  @Override
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
