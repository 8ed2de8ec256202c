package dev.graft.trainer.data;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import java.util.List;

/**
 * How a training loop draws an epoch's batches from its examples: every example once, in an order
 * fixed by the epoch's seed. {@link #of} picks plain shuffled batches ({@link Batcher#shuffled}) or
 * length-bucketed ones ({@link LengthBuckets}, {@code graft train --bucket-by-length}):
 *
 * <pre>
 *   poolBatches = 0   shuffle, cut into batches            lengths mixed, padding to each batch's longest
 *   poolBatches = n   shuffle, sort pools of n batches by length, cut, shuffle the batches
 * </pre>
 */
@FunctionalInterface
public interface BatchOrder {
  /** One epoch's batches for {@code seed}. */
  ImmutableList<Batch> epoch(List<EncodedExample> examples, long seed);

  /** Shuffled batches when {@code poolBatches} is 0, else length buckets over pools of that many batches. */
  static BatchOrder of(Batcher batcher, int poolBatches) {
    checkArgument(poolBatches >= 0, "the length-bucket pool must be 0 (off) or a number of batches, got %s", poolBatches);
    return poolBatches == 0 ? batcher::shuffled : new LengthBuckets(batcher, poolBatches)::shuffled;
  }
}
