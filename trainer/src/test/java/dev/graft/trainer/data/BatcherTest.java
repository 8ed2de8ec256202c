package dev.graft.trainer.data;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.graft.fixtures.PretrainedModels;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

class BatcherTest {
  private static EncodedExample seq(int label, long... ids) {
    return new EncodedExample(ids, new long[ids.length], label);
  }

  @Test
  void padsEachBatchToItsLongestSequence() {
    List<EncodedExample> examples =
        List.of(seq(0, 101, 5, 102), seq(1, 101, 6, 7, 8, 102), seq(1, 101, 102), seq(0, 101, 9, 102));
    List<Batch> batches = new Batcher(3, 128, 0).batches(examples);
    assertThat(batches).hasSize(2);

    Batch b = batches.get(0);
    assertThat(b.shape()).containsExactly(3, 5);
    assertThat(b.inputIds()).containsExactly(
        101, 5, 102, 0, 0,
        101, 6, 7, 8, 102,
        101, 102, 0, 0, 0);
    assertThat(b.attentionMask()).containsExactly(
        1, 1, 1, 0, 0,
        1, 1, 1, 1, 1,
        1, 1, 0, 0, 0);
    assertThat(b.tokenTypeIds()).containsOnly(0);
    assertThat(b.labels()).containsExactly(0, 1, 1);
    assertThat(b.tokens(1)).isEqualTo(5);

    // The last, smaller batch is padded to its own longest sequence only.
    Batch last = batches.get(1);
    assertThat(last.shape()).containsExactly(1, 3);
    assertThat(last.inputIds()).containsExactly(101, 9, 102);
  }

  @Test
  void padIdAndTokenTypesAreHonoured() {
    EncodedExample pair = new EncodedExample(new long[] {1, 2, 3, 4}, new long[] {0, 0, 1, 1}, 0);
    Batch b = new Batcher(2, 8, 7).batch(List.of(pair, seq(1, 1, 2)));
    assertThat(b.inputIds()).containsExactly(1, 2, 3, 4, 1, 2, 7, 7);
    assertThat(b.tokenTypeIds()).containsExactly(0, 0, 1, 1, 0, 0, 0, 0);
  }

  @Test
  void truncationMatchesTheTokenizersOwnTruncation() {
    String text = "The battery died after two days and support never answered my emails at all.";
    try (WordPieceTokenizer full = WordPieceTokenizer.load(PretrainedModels.miniLmTokenizer(), 128);
        WordPieceTokenizer eight = WordPieceTokenizer.load(PretrainedModels.miniLmTokenizer(), 8)) {
      EncodedExample long_ = full.encode(text, 1);
      assertThat(long_.length()).isGreaterThan(8);
      Batch b = new Batcher(1, 8, full.padId()).batch(List.of(long_));
      assertThat(b.inputIds()).containsExactly(eight.encode(text).inputIds());
      assertThat(b.attentionMask()).containsOnly(1);
    }
  }

  @Test
  void shufflingIsAPermutationFixedBySeed() {
    List<EncodedExample> examples = new ArrayList<>();
    for (int i = 0; i < 100; i++) examples.add(seq(i % 3, 101, i + 1000, 102));
    Batcher batcher = new Batcher(16, 32, 0);

    long[] a = secondTokens(batcher.shuffled(examples, 7));
    long[] again = secondTokens(batcher.shuffled(examples, 7));
    long[] other = secondTokens(batcher.shuffled(examples, 8));
    assertThat(a).containsExactly(again);
    assertThat(a).isNotEqualTo(other);
    long[] sorted = a.clone();
    Arrays.sort(sorted);
    long[] expected = new long[100];
    for (int i = 0; i < 100; i++) expected[i] = i + 1000;
    assertThat(sorted).containsExactly(expected);
    assertThat(a).isNotEqualTo(expected);
  }

  @Test
  void permutationIsUniformEnough() {
    // Each of 4 elements lands in each position about 1/4 of the time over many seeds.
    int[][] counts = new int[4][4];
    int trials = 40_000;
    for (int s = 0; s < trials; s++) {
      int[] p = Shuffle.permutation(4, s);
      for (int pos = 0; pos < 4; pos++) counts[p[pos]][pos]++;
    }
    for (int[] row : counts) {
      for (int c : row) assertThat(c).isBetween(trials / 4 - 600, trials / 4 + 600);
    }
  }

  @Test
  void splitsAreDeterministicDisjointAndStratified() {
    List<TextExample> items = new ArrayList<>();
    for (int i = 0; i < 1000; i++) items.add(new TextExample("t" + i, i < 800 ? "a" : "b"));

    Split<TextExample> s = Split.stratified(items, 0.1, 3, TextExample::label);
    assertThat(s.validation()).hasSize(100);
    assertThat(s.train()).hasSize(900);
    assertThat(s.validation().stream().filter(e -> e.label().equals("b")).count()).isEqualTo(20);
    assertThat(s.train()).doesNotContainAnyElementsOf(s.validation());
    assertThat(Split.stratified(items, 0.1, 3, TextExample::label)).isEqualTo(s);
    assertThat(Split.stratified(items, 0.1, 4, TextExample::label)).isNotEqualTo(s);
    // Input order is kept inside each part.
    assertThat(s.train()).isSortedAccordingTo(
        (x, y) -> Integer.compare(items.indexOf(x), items.indexOf(y)));

    Split<TextExample> r = Split.random(items, 0.25, 3);
    assertThat(r.validation()).hasSize(250);
    assertThat(r.train()).hasSize(750).doesNotContainAnyElementsOf(r.validation());
    assertThat(Split.random(items, 0.25, 3)).isEqualTo(r);
    assertThat(Split.random(items, 0, 3).train()).isEqualTo(items);
    assertThatThrownBy(() -> Split.random(items, 1.0, 3)).hasMessageContaining("not in [0, 1)");
  }

  @Test
  void badArgumentsAreRefused() {
    assertThatThrownBy(() -> new Batcher(0, 8, 0)).hasMessageContaining("batch size 0");
    assertThatThrownBy(() -> new Batcher(1, 8, 0).batch(List.of()))
        .hasMessageContaining("zero examples");
    assertThatThrownBy(() -> new EncodedExample(new long[] {1}, new long[] {0, 0}, 0))
        .hasMessageContaining("1 input ids but 2 token type ids");
  }

  private static long[] secondTokens(List<Batch> batches) {
    List<Long> out = new ArrayList<>();
    for (Batch b : batches) {
      for (int r = 0; r < b.size(); r++) out.add(b.inputIds()[r * b.sequenceLength() + 1]);
    }
    return out.stream().mapToLong(Long::longValue).toArray();
  }
}
