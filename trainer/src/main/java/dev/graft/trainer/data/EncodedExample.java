package dev.graft.trainer.data;

import static com.google.common.base.Preconditions.checkArgument;

/**
 * One tokenised example before padding: token ids (with the model's special tokens, such as
 * [CLS] and [SEP]), their token type ids, and the class id ({@code -1} when unlabelled). The
 * arrays are shared, not copied: treat them as read-only. Equality is identity, as for arrays.
 */
public record EncodedExample(long[] inputIds, long[] tokenTypeIds, int label) {
  public EncodedExample {
    checkArgument(inputIds.length > 0, "an encoded example has no tokens");
    checkArgument(
        inputIds.length == tokenTypeIds.length,
        "%s input ids but %s token type ids",
        inputIds.length,
        tokenTypeIds.length);
    checkArgument(label >= -1, "label %s is negative (use -1 for unlabelled)", label);
  }

  public int length() {
    return inputIds.length;
  }
}
