package dev.graft.trainer.data;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import com.google.gson.JsonPrimitive;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/**
 * Reads labelled texts for classification from the file formats people have at hand:
 *
 * <ul>
 *   <li>{@code .csv}: RFC 4180 comma-separated values with a header row (quoted fields may hold
 *       commas, doubled quotes and line breaks).
 *   <li>{@code .tsv}, {@code .tab}: tab-separated values with a header row, no quoting (fields
 *       cannot hold tabs or line breaks; quotes are data).
 *   <li>{@code .jsonl}, {@code .ndjson}: one flat JSON object per line.
 *   <li>{@code .json}: one JSON array of flat objects, such as the UCI sentiment files of the npm
 *       package {@code sentiment} ({@code [{"text":"...","class":1}, ...]}): when the label
 *       column is the default {@code label} and an object has none, its {@code class} is used.
 * </ul>
 *
 * The text and label columns (keys, for JSON) default to {@code text} and {@code label}. Labels
 * stay strings here (JSON numbers keep their spelling, so {@code 1} reads as "1"); {@link
 * LabelMap} turns them into class ids. An object or row with an empty text and a null or empty
 * label is a placeholder (the sentiment files end with one) and is skipped; any other missing
 * label is an error naming the file and line.
 */
public final class TextDatasets {
  public static final String DEFAULT_TEXT_COLUMN = "text";
  public static final String DEFAULT_LABEL_COLUMN = "label";
  /** The label key of the npm {@code sentiment} package's files, used when "label" is absent. */
  static final String SENTIMENT_LABEL_KEY = "class";

  /** The formats {@link #read} knows, chosen from the file's extension. */
  public enum Format {
    CSV,
    TSV,
    JSONL,
    JSON;

    /** The format a file's extension names. */
    public static Format of(Path file) {
      String name = String.valueOf(file.getFileName()).toLowerCase(Locale.ROOT);
      if (name.endsWith(".csv")) return CSV;
      if (name.endsWith(".tsv") || name.endsWith(".tab")) return TSV;
      if (name.endsWith(".jsonl") || name.endsWith(".ndjson")) return JSONL;
      if (name.endsWith(".json")) return JSON;
      throw new DataFileException(
          file,
          0,
          "cannot tell the format from the file name. Use a .csv, .tsv, .jsonl or .json file"
              + " (rename it if the content is one of these).");
    }
  }

  private TextDatasets() {}

  /** Reads {@code file} with the default columns {@code text} and {@code label}. */
  public static ImmutableList<TextExample> read(Path file) {
    return read(file, DEFAULT_TEXT_COLUMN, DEFAULT_LABEL_COLUMN);
  }

  /** Reads {@code file} in the format its extension names. */
  public static ImmutableList<TextExample> read(Path file, String textColumn, String labelColumn) {
    return read(file, Format.of(file), textColumn, labelColumn);
  }

  /** Reads {@code file} as {@code format}. */
  public static ImmutableList<TextExample> read(
      Path file, Format format, String textColumn, String labelColumn) {
    checkArgument(!textColumn.isEmpty(), "the text column name is empty");
    checkArgument(!labelColumn.isEmpty(), "the label column name is empty");
    checkArgument(
        !textColumn.equals(labelColumn),
        "the text and label columns are both '%s'; pass different --text-column and"
            + " --label-column",
        textColumn);
    try (BufferedReader in = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
      ImmutableList<TextExample> examples =
          switch (format) {
            case CSV -> delimited(new DelimitedParser(in, file, ',', true), file, textColumn,
                labelColumn);
            case TSV -> delimited(new DelimitedParser(in, file, '\t', false), file, textColumn,
                labelColumn);
            case JSONL -> jsonLines(in, file, textColumn, labelColumn);
            case JSON -> jsonArray(in, file, textColumn, labelColumn);
          };
      if (examples.isEmpty()) {
        throw new DataFileException(file, 0, "has no examples.");
      }
      return examples;
    } catch (NoSuchFileException e) {
      throw new UncheckedIOException("Data file " + file + " does not exist.", e);
    } catch (CharacterCodingException e) {
      throw notUtf8(file, e);
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot read data file " + file + ": " + e.getMessage(), e);
    } catch (RuntimeException e) {
      // Gson wraps the reader's decoding error in its own exceptions.
      for (Throwable c = e.getCause(); c != null; c = c.getCause()) {
        if (c instanceof CharacterCodingException cce) throw notUtf8(file, cce);
      }
      throw e;
    }
  }

  /**
   * The data file is not UTF-8: names the first line that does not decode, the bytes there, and
   * how to convert the file.
   */
  static DataFileException notUtf8(Path file, CharacterCodingException cause) {
    int line = 0;
    String bytes = "";
    try {
      byte[] all = Files.readAllBytes(file);
      CharsetDecoder decoder =
          StandardCharsets.UTF_8.newDecoder()
              .onMalformedInput(CodingErrorAction.REPORT)
              .onUnmappableCharacter(CodingErrorAction.REPORT);
      int start = 0;
      for (int n = 1; start <= all.length; n++) {
        int end = start;
        while (end < all.length && all[end] != '\n') end++;
        try {
          decoder.reset().decode(ByteBuffer.wrap(all, start, end - start));
        } catch (CharacterCodingException bad) {
          line = n;
          StringBuilder hex = new StringBuilder();
          for (int i = start; i < end && hex.length() < 40; i++) {
            if (all[i] < 0) hex.append(String.format(Locale.ROOT, "%s0x%02X", hex.length() == 0 ? "" : " ", all[i] & 0xFF));
          }
          bytes = " (bytes " + hex + ")";
          break;
        }
        start = end + 1;
      }
    } catch (IOException e) {
      // The line stays unknown (0); the message still says what to do.
    }
    return new DataFileException(
        file,
        line,
        "is not valid UTF-8" + bytes + ". Graft reads data files as UTF-8: convert it, e.g."
            + " iconv -f latin1 -t utf-8 " + file + " > " + file.getFileName() + ".utf8 (name the file's real"
            + " encoding after -f), and pass the converted file.",
        cause);
  }

  private static ImmutableList<TextExample> delimited(
      DelimitedParser parser, Path file, String textColumn, String labelColumn)
      throws IOException {
    DelimitedParser.Row header = parser.next();
    if (header == null) throw new DataFileException(file, 0, "is empty; expected a header row.");
    List<String> columns = header.fields().stream().map(String::strip).toList();
    int text = column(columns, textColumn, "--text-column", file, header.line());
    int label = column(columns, labelColumn, "--label-column", file, header.line());
    ImmutableList.Builder<TextExample> out = ImmutableList.builder();
    for (DelimitedParser.Row row = parser.next(); row != null; row = parser.next()) {
      if (row.fields().size() != columns.size()) {
        throw new DataFileException(
            file,
            row.line(),
            row.fields().size()
                + " fields, but the header has "
                + columns.size()
                + " ("
                + String.join(", ", columns)
                + "). Quote fields that contain the delimiter"
                + (file.toString().endsWith(".csv") ? "." : "; a TSV field cannot hold a tab."));
      }
      String t = row.fields().get(text);
      String l = row.fields().get(label).strip();
      if (l.isEmpty()) {
        if (t.isBlank()) continue;
        throw new DataFileException(
            file, row.line(), "empty label in column '" + labelColumn + "'.");
      }
      out.add(new TextExample(t, l));
    }
    return out.build();
  }

  private static int column(
      List<String> columns, String wanted, String option, Path file, int line) {
    int i = columns.indexOf(wanted);
    if (i < 0) {
      throw new DataFileException(
          file,
          line,
          "no column '" + wanted + "'; columns are: " + String.join(", ", columns) + ". Use "
              + option + ".");
    }
    return i;
  }

  private static ImmutableList<TextExample> jsonLines(
      BufferedReader in, Path file, String textColumn, String labelColumn) throws IOException {
    ImmutableList.Builder<TextExample> out = ImmutableList.builder();
    int lineNo = 0;
    for (String line = in.readLine(); line != null; line = in.readLine()) {
      lineNo++;
      if (lineNo == 1 && line.startsWith("\uFEFF")) line = line.substring(1);
      if (line.isBlank()) continue;
      JsonElement element;
      try {
        element = JsonParser.parseString(line);
      } catch (JsonParseException e) {
        throw new DataFileException(
            file, lineNo, "not valid JSON (" + rootCause(e) + "). Each line must be one object.",
            e);
      }
      if (!element.isJsonObject()) {
        throw new DataFileException(
            file, lineNo, "expected a JSON object such as {\"text\": \"...\", \"label\": \"...\"}.");
      }
      TextExample example =
          fromObject(element.getAsJsonObject(), file, lineNo, "line", textColumn, labelColumn);
      if (example != null) out.add(example);
    }
    return out.build();
  }

  private static ImmutableList<TextExample> jsonArray(
      BufferedReader in, Path file, String textColumn, String labelColumn) {
    JsonElement root;
    try {
      root = JsonParser.parseReader(in);
    } catch (JsonParseException e) {
      throw new DataFileException(file, 0, "not valid JSON (" + rootCause(e) + ").", e);
    }
    if (!root.isJsonArray()) {
      throw new DataFileException(
          file,
          0,
          "expected a JSON array of objects. For one object per line, name the file .jsonl.");
    }
    ImmutableList.Builder<TextExample> out = ImmutableList.builder();
    int index = 0;
    for (JsonElement element : root.getAsJsonArray()) {
      if (!element.isJsonObject()) {
        throw new DataFileException(file, 0, "element " + index + " is not a JSON object.");
      }
      JsonObject object = element.getAsJsonObject();
      String labelKey = labelColumn;
      if (labelColumn.equals(DEFAULT_LABEL_COLUMN)
          && !object.has(DEFAULT_LABEL_COLUMN)
          && object.has(SENTIMENT_LABEL_KEY)) {
        labelKey = SENTIMENT_LABEL_KEY;
      }
      TextExample example = fromObject(object, file, index, "element", textColumn, labelKey);
      if (example != null) out.add(example);
      index++;
    }
    return out.build();
  }

  /** The example in {@code object}, or null for a placeholder (empty text, no label). */
  private static TextExample fromObject(
      JsonObject object, Path file, int where, String unit, String textKey, String labelKey) {
    String text = scalar(object, textKey, "--text-column", file, where, unit);
    String label = scalar(object, labelKey, "--label-column", file, where, unit);
    if (label == null || label.isBlank()) {
      if (text == null || text.isBlank()) return null;
      throw jsonError(file, where, unit, "the label '" + labelKey + "' is null or empty.");
    }
    if (text == null) throw jsonError(file, where, unit, "the text '" + textKey + "' is null.");
    return new TextExample(text, label.strip());
  }

  private static String scalar(
      JsonObject object, String key, String option, Path file, int where, String unit) {
    if (!object.has(key)) {
      throw jsonError(
          file,
          where,
          unit,
          "no key '" + key + "'; keys are: " + String.join(", ", object.keySet()) + ". Use "
              + option + ".");
    }
    JsonElement value = object.get(key);
    if (value.isJsonNull()) return null;
    if (!value.isJsonPrimitive()) {
      throw jsonError(
          file, where, unit, "'" + key + "' is " + value + ", expected a string or a number.");
    }
    JsonPrimitive p = value.getAsJsonPrimitive();
    // For numbers getAsString returns the spelling in the file, so 1 stays "1", not "1.0".
    return p.getAsString();
  }

  private static DataFileException jsonError(Path file, int where, String unit, String problem) {
    return unit.equals("line")
        ? new DataFileException(file, where, problem)
        : new DataFileException(file, 0, unit + " " + where + ": " + problem);
  }

  private static String rootCause(Throwable e) {
    Throwable t = e;
    while (t.getCause() != null && t.getCause() != t) t = t.getCause();
    return t.getMessage();
  }

  /**
   * Writes examples as JSONL ({@code {"text": ..., "label": ...}} per line), the form {@link
   * #read} takes back with the default columns; through a temporary file.
   */
  public static void writeJsonl(Path file, List<TextExample> examples) {
    StringBuilder b = new StringBuilder();
    for (TextExample e : examples) {
      com.google.gson.JsonObject o = new com.google.gson.JsonObject();
      o.addProperty(DEFAULT_TEXT_COLUMN, e.text());
      o.addProperty(DEFAULT_LABEL_COLUMN, e.label());
      b.append(o).append('\n');
    }
    dev.graft.ir.io.AtomicFiles.writeString(file, b.toString());
  }
}
