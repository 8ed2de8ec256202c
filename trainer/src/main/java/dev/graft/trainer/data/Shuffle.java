package dev.graft.trainer.data;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Seeded permutations. {@link SplittableRandom} with a given seed yields the same sequence on
 * every JVM and version (its algorithm is specified), so a run's data order is a function of its
 * seed alone.
 */
public final class Shuffle {
  private Shuffle() {}

  /** A uniformly random permutation of 0..n-1 (Fisher-Yates), the same for the same seed. */
  public static int[] permutation(int n, long seed) {
    checkArgument(n >= 0, "cannot permute %s elements", n);
    int[] p = new int[n];
    for (int i = 0; i < n; i++) p[i] = i;
    SplittableRandom random = new SplittableRandom(seed);
    for (int i = n - 1; i > 0; i--) {
      int j = random.nextInt(i + 1);
      int t = p[i];
      p[i] = p[j];
      p[j] = t;
    }
    return p;
  }

  /** {@code items} in the order of {@link #permutation}{@code (items.size(), seed)}. */
  public static <T> ImmutableList<T> shuffled(List<T> items, long seed) {
    int[] p = permutation(items.size(), seed);
    ImmutableList.Builder<T> out = ImmutableList.builderWithExpectedSize(p.length);
    for (int i : p) out.add(items.get(i));
    return out.build();
  }
}
