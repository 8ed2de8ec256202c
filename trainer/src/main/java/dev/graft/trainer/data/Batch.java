package dev.graft.trainer.data;

import static com.google.common.base.Preconditions.checkArgument;

/**
 * A padded batch of token sequences, laid out row-major as ONNX Runtime takes int64 tensors of
 * shape {@code [size, sequenceLength]}: {@code inputIds[row * sequenceLength + col]}. Padding
 * positions hold the pad id, attention mask 0 and token type 0; real tokens have mask 1.
 * {@code labels[row]} is the class id ({@code -1} when unlabelled). Arrays are shared, not
 * copied: treat them as read-only. Equality is identity, as for arrays.
 */
public record Batch(
    int size,
    int sequenceLength,
    long[] inputIds,
    long[] attentionMask,
    long[] tokenTypeIds,
    long[] labels) {
  public Batch {
    checkArgument(size > 0 && sequenceLength > 0, "empty batch %s x %s", size, sequenceLength);
    int n = size * sequenceLength;
    checkArgument(
        inputIds.length == n && attentionMask.length == n && tokenTypeIds.length == n,
        "a %s x %s batch needs %s ids, mask and type entries; got %s, %s, %s",
        size,
        sequenceLength,
        n,
        inputIds.length,
        attentionMask.length,
        tokenTypeIds.length);
    checkArgument(labels.length == size, "%s labels for %s rows", labels.length, size);
  }

  /** {@code [size, sequenceLength]}, the shape of the three token tensors. */
  public long[] shape() {
    return new long[] {size, sequenceLength};
  }

  /** How many real (unpadded) tokens row {@code row} has. */
  public int tokens(int row) {
    checkArgument(row >= 0 && row < size, "row %s is not in [0, %s)", row, size);
    int n = 0;
    for (int c = 0; c < sequenceLength; c++) n += (int) attentionMask[row * sequenceLength + c];
    return n;
  }
}
