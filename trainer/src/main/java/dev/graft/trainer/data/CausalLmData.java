package dev.graft.trainer.data;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Causal-LM training data: documents read from plain text or JSONL, tokenised to bytes and packed
 * into fixed-length blocks with next-token labels.
 *
 * <ul>
 *   <li>Plain text (any extension but {@code .jsonl}/{@code .ndjson}): the whole file is one
 *       document, every token is learned.
 *   <li>JSONL, one object per line: {@code {"text": ...}} (every token learned) or {@code
 *       {"prompt": ..., "completion": ...}} (the loss is on the completion only). A line with a
 *       prompt and no completion, or neither field, is an error naming the line.
 * </ul>
 *
 * Packing: documents are joined by a newline byte into one stream; the stream is cut into blocks
 * of {@code blockSize + 1} tokens that overlap by one, so block k gives inputs {@code t[0..L)}
 * and labels {@code t[1..L]} (the shift), with label {@value #IGNORE} where the target token is
 * part of a prompt (or the separator after one). A tail shorter than a block is dropped; a stream
 * shorter than one block is an error.
 */
public final class CausalLmData {
  /** The label of positions that carry no loss (PyTorch's ignore_index default). */
  public static final long IGNORE = -100;

  /** One packed block: inputs and labels, {@code blockSize} each. */
  public record Block(long[] inputIds, long[] labels) {
    /** The positions whose label counts. */
    public int targets() {
      int n = 0;
      for (long l : labels) if (l != IGNORE) n++;
      return n;
    }
  }

  /** A document's tokens and, per token, whether it is learned (predicted as a target). */
  record Document(long[] tokens, boolean[] learned) {}

  private CausalLmData() {}

  /** The packed blocks of {@code file}. */
  public static ImmutableList<Block> read(Path file, int blockSize) {
    checkArgument(blockSize >= 2, "block size must be at least 2, got %s", blockSize);
    List<Document> docs = documents(file);
    return pack(file, docs, blockSize);
  }

  static List<Document> documents(Path file) {
    String name = String.valueOf(file.getFileName()).toLowerCase(java.util.Locale.ROOT);
    try {
      if (!Files.isRegularFile(file)) {
        throw new DataFileException(file, 0, "no such file. Give a plain-text or JSONL file.");
      }
      if (name.endsWith(".jsonl") || name.endsWith(".ndjson")) return jsonLines(file);
      String text = Files.readString(file, StandardCharsets.UTF_8);
      if (text.startsWith("\uFEFF")) text = text.substring(1);
      long[] ids = ByteTokenizer.encode(text);
      boolean[] all = new boolean[ids.length];
      java.util.Arrays.fill(all, true);
      return List.of(new Document(ids, all));
    } catch (java.nio.charset.MalformedInputException e) {
      throw new DataFileException(file, 0, "not UTF-8 text. Convert it to UTF-8 first.", e);
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot read " + file + ": " + e.getMessage(), e);
    }
  }

  private static List<Document> jsonLines(Path file) throws IOException {
    List<Document> out = new ArrayList<>();
    try (BufferedReader in = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
      int lineNo = 0;
      for (String line = in.readLine(); line != null; line = in.readLine()) {
        lineNo++;
        if (lineNo == 1 && line.startsWith("\uFEFF")) line = line.substring(1);
        if (line.isBlank()) continue;
        JsonElement e;
        try {
          e = JsonParser.parseString(line);
        } catch (JsonParseException ex) {
          throw new DataFileException(file, lineNo, "not valid JSON. Each line must be one object such as {\"text\": \"...\"}.", ex);
        }
        if (!e.isJsonObject()) {
          throw new DataFileException(file, lineNo, "expected a JSON object such as {\"text\": \"...\"} or {\"prompt\": \"...\", \"completion\": \"...\"}.");
        }
        JsonObject o = e.getAsJsonObject();
        String text = field(o, "text", file, lineNo);
        String prompt = field(o, "prompt", file, lineNo);
        String completion = field(o, "completion", file, lineNo);
        if (text != null && (prompt != null || completion != null)) {
          throw new DataFileException(file, lineNo, "has both \"text\" and \"prompt\"/\"completion\". Use one form per line.");
        }
        if (text != null) {
          long[] ids = ByteTokenizer.encode(text);
          boolean[] all = new boolean[ids.length];
          java.util.Arrays.fill(all, true);
          out.add(new Document(ids, all));
        } else if (prompt != null && completion != null) {
          long[] p = ByteTokenizer.encode(prompt);
          long[] c = ByteTokenizer.encode(completion);
          long[] ids = new long[p.length + c.length];
          System.arraycopy(p, 0, ids, 0, p.length);
          System.arraycopy(c, 0, ids, p.length, c.length);
          boolean[] learned = new boolean[ids.length];
          for (int i = p.length; i < ids.length; i++) learned[i] = true;
          out.add(new Document(ids, learned));
        } else {
          String missing = prompt != null ? "\"completion\"" : completion != null ? "\"prompt\"" : "\"text\" (or \"prompt\" and \"completion\")";
          throw new DataFileException(file, lineNo, "no " + missing + " field. Every line needs {\"text\": ...} or both {\"prompt\": ..., \"completion\": ...}.");
        }
      }
    }
    if (out.isEmpty()) throw new DataFileException(file, 0, "no examples. Add one JSON object per line.");
    return out;
  }

  private static String field(JsonObject o, String name, Path file, int line) {
    JsonElement v = o.get(name);
    if (v == null || v.isJsonNull()) return null;
    if (!v.isJsonPrimitive() || !v.getAsJsonPrimitive().isString()) {
      throw new DataFileException(file, line, "\"" + name + "\" must be a string.");
    }
    return v.getAsString();
  }

  static ImmutableList<Block> pack(Path file, List<Document> docs, int blockSize) {
    int total = 0;
    for (Document d : docs) total += d.tokens().length + 1;
    long[] stream = new long[total];
    boolean[] learned = new boolean[total];
    int at = 0;
    for (Document d : docs) {
      System.arraycopy(d.tokens(), 0, stream, at, d.tokens().length);
      System.arraycopy(d.learned(), 0, learned, at, d.tokens().length);
      at += d.tokens().length;
      stream[at] = '\n';
      // The separator ends a learned document (the model learns where text stops), not a prompt.
      learned[at] = d.learned().length > 0 && d.learned()[d.learned().length - 1];
      at++;
    }
    if (total < blockSize + 1) {
      throw new DataFileException(file, 0, total + " tokens (bytes), fewer than one block of " + (blockSize + 1)
          + " (--max-length " + blockSize + " + 1 for the shifted labels). Use a smaller --max-length or more text.");
    }
    ImmutableList.Builder<Block> out = ImmutableList.builder();
    for (int start = 0; start + blockSize + 1 <= total; start += blockSize) {
      long[] in = new long[blockSize];
      long[] labels = new long[blockSize];
      for (int t = 0; t < blockSize; t++) {
        in[t] = stream[start + t];
        labels[t] = learned[start + t + 1] ? stream[start + t + 1] : IGNORE;
      }
      out.add(new Block(in, labels));
    }
    return out.build();
  }
}
