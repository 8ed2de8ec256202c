package dev.graft.trainer.data;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/**
 * A train/validation split. Both parts keep the input's order (the trainer shuffles per epoch),
 * and which items go where depends only on the items, the fraction and the seed.
 */
public record Split<T>(ImmutableList<T> train, ImmutableList<T> validation) {

  /** {@code round(n * validationFraction)} items, chosen at random, go to validation. */
  public static <T> Split<T> random(List<T> items, double validationFraction, long seed) {
    checkFraction(validationFraction);
    int n = items.size();
    int take = (int) Math.round(n * validationFraction);
    boolean[] held = new boolean[n];
    int[] p = Shuffle.permutation(n, seed);
    for (int i = 0; i < take; i++) held[p[i]] = true;
    return partition(items, held);
  }

  /**
   * Like {@link #random}, but each label contributes {@code round(count * validationFraction)}
   * of its items, so both parts keep the label proportions. Labels are visited in order of first
   * appearance, each with its own seed derived from {@code seed}.
   */
  public static <T> Split<T> stratified(
      List<T> items, double validationFraction, long seed, Function<? super T, ?> labelOf) {
    checkFraction(validationFraction);
    Map<Object, List<Integer>> byLabel = new LinkedHashMap<>();
    for (int i = 0; i < items.size(); i++) {
      byLabel.computeIfAbsent(labelOf.apply(items.get(i)), k -> new ArrayList<>()).add(i);
    }
    boolean[] held = new boolean[items.size()];
    long groupSeed = seed;
    for (List<Integer> group : byLabel.values()) {
      int take = (int) Math.round(group.size() * validationFraction);
      int[] p = Shuffle.permutation(group.size(), groupSeed);
      for (int i = 0; i < take; i++) held[group.get(p[i])] = true;
      // A fixed odd constant (the golden ratio's) spreads the per-label seeds.
      groupSeed += 0x9E3779B97F4A7C15L;
    }
    return partition(items, held);
  }

  private static <T> Split<T> partition(List<T> items, boolean[] held) {
    ImmutableList.Builder<T> train = ImmutableList.builder();
    ImmutableList.Builder<T> validation = ImmutableList.builder();
    for (int i = 0; i < items.size(); i++) (held[i] ? validation : train).add(items.get(i));
    return new Split<>(train.build(), validation.build());
  }

  private static void checkFraction(double f) {
    checkArgument(
        f >= 0 && f < 1,
        "the validation fraction %s is not in [0, 1); use e.g. 0.1 for 10%%",
        f);
  }
}
