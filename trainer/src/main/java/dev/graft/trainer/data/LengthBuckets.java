package dev.graft.trainer.data;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * Sequence-length bucketing, a data-loader option beside {@link Batcher#shuffled}: batches of
 * examples of similar length, so that dynamic padding pads little. The examples are shuffled, cut
 * into pools of {@code poolBatches} batches, each pool sorted by length and cut into batches, and
 * the batches shuffled again, so that every epoch still sees a random order of batches and every
 * example once:
 *
 * <pre>
 *   shuffled examples  [e7 e2 e9 e4 | e1 e8 e3 e6 | ...]        pools of poolBatches x batchSize
 *   sorted in a pool   [e2 e4 | e9 e7] [e3 e1 | e6 e8]          short ones together, long ones together
 *   batches shuffled   [e6 e8] [e2 e4] [e3 e1] [e9 e7] ...
 * </pre>
 *
 * On uneven text (sentences of 5 to 64 tokens, e-mails of 20 to 128) a step's cost follows the
 * longest sequence of its batch, so this cuts the padded tokens and the time of an epoch; the
 * gradient of each batch is still that of its examples (the loss ignores padding through the
 * attention mask and the mean pooling). Batches within a pool are no longer i.i.d. in length,
 * which is why pools are bounded: {@code poolBatches = 1} is plain shuffled batching. The last
 * batch of each pool may be smaller than the batch size.
 *
 * <p>A loop that takes its epoch's batches from a function of (examples, seed) uses either
 * {@code batcher::shuffled} or {@code new LengthBuckets(batcher, n)::shuffled}.
 */
public final class LengthBuckets {
  /** 50 batches a pool: long enough to group lengths well, short enough to keep mixing. */
  public static final int DEFAULT_POOL_BATCHES = 50;

  private final Batcher batcher;
  private final int poolBatches;

  public LengthBuckets(Batcher batcher, int poolBatches) {
    checkArgument(batcher != null, "LengthBuckets needs a Batcher, got null");
    checkArgument(poolBatches >= 1, "a pool holds at least 1 batch, got %s", poolBatches);
    this.batcher = batcher;
    this.poolBatches = poolBatches;
  }

  public int poolBatches() {
    return poolBatches;
  }

  /** One epoch's batches for {@code seed}: every example once, lengths grouped within pools. */
  public ImmutableList<Batch> shuffled(List<EncodedExample> examples, long seed) {
    List<EncodedExample> order = Shuffle.shuffled(examples, seed);
    int pool = poolBatches * batcher.batchSize();
    List<Batch> batches = new ArrayList<>();
    for (int start = 0; start < order.size(); start += pool) {
      List<EncodedExample> p = new ArrayList<>(order.subList(start, Math.min(order.size(), start + pool)));
      // A stable sort: equal lengths keep their shuffled order.
      p.sort(Comparator.comparingInt(e -> Math.min(e.length(), batcher.maxLength())));
      batches.addAll(batcher.batches(p));
    }
    // A second stream from the same seed orders the batches.
    return Shuffle.shuffled(batches, seed ^ 0x9E3779B97F4A7C15L);
  }
}
