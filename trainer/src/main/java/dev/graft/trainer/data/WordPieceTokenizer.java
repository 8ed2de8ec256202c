package dev.graft.trainer.data;

import static com.google.common.base.Preconditions.checkArgument;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.google.common.collect.ImmutableList;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.io.Reader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * A model's own tokenizer, from its HuggingFace {@code tokenizer.json}, run by DJL's binding of
 * HuggingFace's Rust {@code tokenizers} (the same code that produced the model's training ids;
 * the jar bundles the native library, so nothing is downloaded). Encodings carry the special
 * tokens ([CLS] ... [SEP] for BERT) and are truncated on the right to {@code maxLength} tokens
 * including those. Padding is not done here: the file may ask for fixed padding (MiniLM's asks
 * for 128), which is switched off so that {@link Batcher} can pad each batch to its own longest
 * sequence.
 *
 * <p>Holds a native handle: close it.
 */
public final class WordPieceTokenizer implements AutoCloseable {
  private static final int BATCH = 256;

  private final HuggingFaceTokenizer tokenizer;
  private final int maxLength;
  private final long padId;

  private WordPieceTokenizer(HuggingFaceTokenizer tokenizer, int maxLength, long padId) {
    this.tokenizer = tokenizer;
    this.maxLength = maxLength;
    this.padId = padId;
  }

  /** Loads {@code tokenizerJson} (a HuggingFace {@code tokenizer.json}). */
  public static WordPieceTokenizer load(Path tokenizerJson, int maxLength) {
    checkArgument(maxLength >= 2, "max length %s must be at least 2 ([CLS] and [SEP])", maxLength);
    checkArgument(
        Files.isRegularFile(tokenizerJson),
        "Tokenizer file %s does not exist. Pass the model's tokenizer.json.",
        tokenizerJson);
    long padId = padId(tokenizerJson);
    try {
      HuggingFaceTokenizer t =
          HuggingFaceTokenizer.builder()
              .optTokenizerPath(tokenizerJson)
              .optAddSpecialTokens(true)
              .optTruncation(true)
              .optMaxLength(maxLength)
              .optPadding(false)
              .build();
      return new WordPieceTokenizer(t, maxLength, padId);
    } catch (IOException e) {
      throw new UncheckedIOException(
          "Cannot load tokenizer " + tokenizerJson + ": " + e.getMessage(), e);
    } catch (RuntimeException e) {
      throw new IllegalArgumentException(
          "Cannot load tokenizer "
              + tokenizerJson
              + ": "
              + e.getMessage()
              + ". Is it a HuggingFace tokenizer.json (not vocab.txt or tokenizer_config.json)?",
          e);
    }
  }

  public int maxLength() {
    return maxLength;
  }

  /** The id that pads sequences: the file's padding {@code pad_id}, else {@code [PAD]}'s, else 0. */
  public long padId() {
    return padId;
  }

  /** Token ids and token type ids of {@code text}, with special tokens, truncated. */
  public EncodedExample encode(String text) {
    return encode(text, -1);
  }

  /** Like {@link #encode(String)}, carrying class id {@code label}. */
  public EncodedExample encode(String text, int label) {
    Encoding e = tokenizer.encode(text);
    return new EncodedExample(e.getIds(), e.getTypeIds(), label);
  }

  /** The token strings of {@code text} (with special tokens), for display and debugging. */
  public ImmutableList<String> tokens(String text) {
    return ImmutableList.copyOf(tokenizer.encode(text).getTokens());
  }

  /** Encodes every example, its label mapped through {@code labels}, in order. */
  public ImmutableList<EncodedExample> encodeAll(List<TextExample> examples, LabelMap labels) {
    ImmutableList.Builder<EncodedExample> out = ImmutableList.builderWithExpectedSize(examples.size());
    for (int start = 0; start < examples.size(); start += BATCH) {
      List<TextExample> chunk = examples.subList(start, Math.min(examples.size(), start + BATCH));
      Encoding[] encodings = tokenizer.batchEncode(chunk.stream().map(TextExample::text).toList());
      for (int i = 0; i < encodings.length; i++) {
        out.add(
            new EncodedExample(
                encodings[i].getIds(),
                encodings[i].getTypeIds(),
                labels.id(chunk.get(i).label())));
      }
    }
    return out.build();
  }

  @Override
  public void close() {
    tokenizer.close();
  }

  private static long padId(Path file) {
    try (Reader in = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
      JsonElement root = JsonParser.parseReader(in);
      if (!root.isJsonObject()) return 0;
      JsonObject o = root.getAsJsonObject();
      if (o.get("padding") instanceof JsonObject padding && padding.has("pad_id")) {
        return padding.get("pad_id").getAsLong();
      }
      if (o.get("model") instanceof JsonObject model
          && model.get("vocab") instanceof JsonObject vocab
          && vocab.has("[PAD]")) {
        return vocab.get("[PAD]").getAsLong();
      }
      return 0;
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot read tokenizer " + file + ": " + e.getMessage(), e);
    } catch (JsonParseException | IllegalStateException | NumberFormatException e) {
      throw new IllegalArgumentException(
          "Tokenizer " + file + " is not valid JSON: " + e.getMessage()
              + ". Pass the model's tokenizer.json.", e);
    }
  }
}
