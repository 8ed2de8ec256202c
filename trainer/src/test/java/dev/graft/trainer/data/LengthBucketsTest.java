package dev.graft.trainer.data;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class LengthBucketsTest {
  /** Example i: [101, i + 1000 repeated, 102], length 3 to 60, label i % 2. */
  private static List<EncodedExample> uneven(int n) {
    SplittableRandom rnd = new SplittableRandom(3);
    List<EncodedExample> out = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      int len = 3 + rnd.nextInt(58);
      long[] ids = new long[len];
      ids[0] = 101;
      for (int k = 1; k < len - 1; k++) ids[k] = 1000 + i;
      ids[len - 1] = 102;
      out.add(new EncodedExample(ids, new long[len], i % 2));
    }
    return out;
  }

  private static List<Long> firstTokens(List<Batch> batches) {
    List<Long> ids = new ArrayList<>();
    for (Batch b : batches) {
      for (int r = 0; r < b.size(); r++) ids.add(b.inputIds()[r * b.sequenceLength() + 1]);
    }
    return ids;
  }

  private static long padded(List<Batch> batches) {
    long pad = 0;
    for (Batch b : batches) {
      for (int r = 0; r < b.size(); r++) pad += b.sequenceLength() - b.tokens(r);
    }
    return pad;
  }

  @Test
  void everyExampleOnceInBatchesOfSimilarLength() {
    List<EncodedExample> examples = uneven(1000);
    Batcher batcher = new Batcher(16, 64, 0);
    List<Batch> bucketed = new LengthBuckets(batcher, 10).shuffled(examples, 7);
    List<Long> seen = firstTokens(bucketed);
    assertThat(seen).hasSize(1000).doesNotHaveDuplicates();
    assertThat(bucketed.stream().mapToInt(Batch::size).max().getAsInt()).isEqualTo(16);
    // Plain shuffled batches pad to the longest of 16 random lengths; bucketed ones pad little.
    long plain = padded(batcher.shuffled(examples, 7));
    long pooled = padded(bucketed);
    assertThat(pooled).isLessThan(plain / 4);
  }

  @Test
  void theOrderIsFixedBySeedAndChangesWithIt() {
    List<EncodedExample> examples = uneven(200);
    LengthBuckets buckets = new LengthBuckets(new Batcher(8, 64, 0), 5);
    assertThat(firstTokens(buckets.shuffled(examples, 1))).isEqualTo(firstTokens(buckets.shuffled(examples, 1)));
    assertThat(firstTokens(buckets.shuffled(examples, 1))).isNotEqualTo(firstTokens(buckets.shuffled(examples, 2)));
  }

  @Test
  void onePoolBatchIsPlainBatchingOfTheShuffledExamples() {
    List<EncodedExample> examples = uneven(100);
    Batcher batcher = new Batcher(10, 64, 0);
    List<Batch> bucketed = new LengthBuckets(batcher, 1).shuffled(examples, 5);
    // The same batches as batcher.shuffled (each sorted inside), in another order.
    List<List<Long>> plainSets = new ArrayList<>();
    for (Batch b : batcher.shuffled(examples, 5)) plainSets.add(sorted(firstTokens(List.of(b))));
    List<List<Long>> bucketSets = new ArrayList<>();
    for (Batch b : bucketed) bucketSets.add(sorted(firstTokens(List.of(b))));
    assertThat(bucketSets).containsExactlyInAnyOrderElementsOf(plainSets);
  }

  @Test
  void refusesAnEmptyPool() {
    assertThatThrownBy(() -> new LengthBuckets(new Batcher(8, 64, 0), 0))
        .hasMessageContaining("at least 1 batch");
  }

  private static List<Long> sorted(List<Long> xs) {
    List<Long> s = new ArrayList<>(xs);
    s.sort(null);
    return s;
  }
}
