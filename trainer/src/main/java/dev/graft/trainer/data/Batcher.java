package dev.graft.trainer.data;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import java.util.List;

/**
 * Groups encoded examples into {@link Batch}es with dynamic padding: each batch is as long as its
 * longest sequence, not as long as the longest in the dataset, so short-sentence batches cost
 * little. The last batch may be smaller than {@code batchSize}.
 *
 * <p>A sequence longer than {@code maxLength} keeps its first {@code maxLength - 1} tokens and its
 * last one. For a single BERT-style sequence ({@code [CLS] tokens [SEP]}) that is exactly what the
 * tokenizer's own right truncation gives; {@link WordPieceTokenizer} already truncates, so this
 * is the guard for examples encoded elsewhere.
 */
public final class Batcher {
  private final int batchSize;
  private final int maxLength;
  private final long padId;

  /**
   * @param padId the tokenizer's padding token id ({@link WordPieceTokenizer#padId()}; 0 for BERT)
   */
  public Batcher(int batchSize, int maxLength, long padId) {
    checkArgument(batchSize > 0, "batch size %s must be positive", batchSize);
    checkArgument(maxLength >= 2, "max length %s must be at least 2", maxLength);
    this.batchSize = batchSize;
    this.maxLength = maxLength;
    this.padId = padId;
  }

  public int batchSize() {
    return batchSize;
  }

  public int maxLength() {
    return maxLength;
  }

  /** The examples in their order, {@code batchSize} at a time. */
  public ImmutableList<Batch> batches(List<EncodedExample> examples) {
    ImmutableList.Builder<Batch> out = ImmutableList.builder();
    for (int start = 0; start < examples.size(); start += batchSize) {
      out.add(batch(examples.subList(start, Math.min(examples.size(), start + batchSize))));
    }
    return out.build();
  }

  /** The examples in the order of {@link Shuffle#permutation}{@code (n, seed)}, batched. */
  public ImmutableList<Batch> shuffled(List<EncodedExample> examples, long seed) {
    return batches(Shuffle.shuffled(examples, seed));
  }

  /** One batch of all of {@code examples}, padded to the longest (at most {@code maxLength}). */
  public Batch batch(List<EncodedExample> examples) {
    checkArgument(!examples.isEmpty(), "cannot batch zero examples");
    int length = 0;
    for (EncodedExample e : examples) length = Math.max(length, Math.min(e.length(), maxLength));
    int size = examples.size();
    long[] ids = new long[size * length];
    long[] mask = new long[size * length];
    long[] types = new long[size * length];
    long[] labels = new long[size];
    for (int r = 0; r < size; r++) {
      EncodedExample e = examples.get(r);
      int n = Math.min(e.length(), maxLength);
      int row = r * length;
      for (int c = 0; c < n; c++) {
        // When truncating, the last kept position takes the sequence's final token ([SEP]).
        int from = (c == n - 1) ? e.length() - 1 : c;
        ids[row + c] = e.inputIds()[from];
        types[row + c] = e.tokenTypeIds()[from];
        mask[row + c] = 1;
      }
      for (int c = n; c < length; c++) ids[row + c] = padId;
      labels[r] = e.label();
    }
    return new Batch(size, length, ids, mask, types, labels);
  }
}
