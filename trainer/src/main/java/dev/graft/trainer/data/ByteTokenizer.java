package dev.graft.trainer.data;

import static com.google.common.base.Preconditions.checkArgument;

import java.nio.charset.StandardCharsets;

/**
 * Byte-level tokenisation: a text's UTF-8 bytes are its token ids (0..255), so every text has an
 * exact encoding, nothing is unknown, and decoding is the inverse. The simplest honest tokenizer
 * for a decoder trained from scratch; the price is long sequences (one token per byte).
 */
public final class ByteTokenizer {
  /** The vocabulary: one id per byte value. */
  public static final int VOCAB = 256;

  private ByteTokenizer() {}

  public static long[] encode(String text) {
    byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
    long[] ids = new long[bytes.length];
    for (int i = 0; i < bytes.length; i++) ids[i] = bytes[i] & 0xFF;
    return ids;
  }

  /** The text of {@code ids}; byte sequences that are not valid UTF-8 decode to U+FFFD. */
  public static String decode(long[] ids) {
    byte[] bytes = new byte[ids.length];
    for (int i = 0; i < ids.length; i++) {
      checkArgument(ids[i] >= 0 && ids[i] < VOCAB, "token %s at %s is not a byte (0..255)", ids[i], i);
      bytes[i] = (byte) ids[i];
    }
    return new String(bytes, StandardCharsets.UTF_8);
  }
}
