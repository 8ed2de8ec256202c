package dev.graft.trainer.data;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * An independent, minimal BERT WordPiece for ASCII text, written from the BERT paper's
 * description and the tokenizer.json vocabulary alone: lowercase; drop control characters; split
 * on whitespace and around every ASCII punctuation character; then greedy longest-match-first
 * sub-words with "##" continuations, [UNK] for a word that cannot be covered; [CLS] ... [SEP].
 * It shares no code with DJL/HuggingFace, so agreement between the two is the oracle.
 */
final class ReferenceWordPiece {
  private final Map<String, Long> vocab = new HashMap<>();

  ReferenceWordPiece(Path tokenizerJson) throws IOException {
    try (Reader in = Files.newBufferedReader(tokenizerJson, StandardCharsets.UTF_8)) {
      JsonObject v = JsonParser.parseReader(in).getAsJsonObject()
          .getAsJsonObject("model").getAsJsonObject("vocab");
      for (String k : v.keySet()) vocab.put(k, v.get(k).getAsLong());
    }
  }

  long[] encode(String text, int maxLength) {
    List<Long> ids = new ArrayList<>();
    for (String word : words(text)) ids.addAll(wordPiece(word));
    int keep = Math.min(ids.size(), maxLength - 2);
    long[] out = new long[keep + 2];
    out[0] = vocab.get("[CLS]");
    for (int i = 0; i < keep; i++) out[i + 1] = ids.get(i);
    out[keep + 1] = vocab.get("[SEP]");
    return out;
  }

  static boolean isAscii(String s) {
    return s.chars().allMatch(c -> c < 128);
  }

  private static List<String> words(String text) {
    List<String> words = new ArrayList<>();
    StringBuilder cur = new StringBuilder();
    for (char c : text.toLowerCase().toCharArray()) {
      if (Character.isWhitespace(c)) {
        flush(cur, words);
      } else if (c < 32 || c == 127) {
        // control characters are removed
      } else if (isPunctuation(c)) {
        flush(cur, words);
        words.add(String.valueOf(c));
      } else {
        cur.append(c);
      }
    }
    flush(cur, words);
    return words;
  }

  private static void flush(StringBuilder cur, List<String> words) {
    if (cur.length() > 0) words.add(cur.toString());
    cur.setLength(0);
  }

  private static boolean isPunctuation(char c) {
    return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96)
        || (c >= 123 && c <= 126);
  }

  private List<Long> wordPiece(String word) {
    List<Long> pieces = new ArrayList<>();
    if (word.length() > 100) return List.of(vocab.get("[UNK]"));
    int start = 0;
    while (start < word.length()) {
      int end = word.length();
      Long id = null;
      while (end > start) {
        String piece = (start > 0 ? "##" : "") + word.substring(start, end);
        id = vocab.get(piece);
        if (id != null) break;
        end--;
      }
      if (id == null) return List.of(vocab.get("[UNK]"));
      pieces.add(id);
      start = end;
    }
    return pieces;
  }
}
