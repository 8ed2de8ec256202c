package dev.graft.trainer.data;

import com.google.common.collect.ImmutableList;
import java.io.IOException;
import java.io.Reader;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Splits CSV (RFC 4180) or TSV text into records. With {@code quoting}, a field that starts with
 * {@code "} runs to the next lone {@code "}: it may hold the delimiter, line breaks and doubled
 * quotes ({@code ""} for one {@code "}). A quote inside an unquoted field is kept as a character,
 * as Python's csv module and spreadsheet programs do. Without quoting (the TSV convention, where
 * fields cannot hold tabs or newlines) every character but the delimiter and line ends is data, so
 * a sentence that starts with a quote survives. Lines end in LF or CRLF; empty lines between
 * records are skipped; a leading byte-order mark is dropped.
 */
final class DelimitedParser {
  /** A record and the line it starts on (1-based), for error messages. */
  record Row(int line, ImmutableList<String> fields) {}

  private static final int EOF = -1;

  private final Reader in;
  private final Path file;
  private final char delimiter;
  private final boolean quoting;
  private int line = 1;
  private int pushedBack = -2;
  private boolean started;

  DelimitedParser(Reader in, Path file, char delimiter, boolean quoting) {
    this.in = in;
    this.file = file;
    this.delimiter = delimiter;
    this.quoting = quoting;
  }

  /** The next record, or null at the end of the input. */
  Row next() throws IOException {
    int c = read();
    while (c == '\r' || c == '\n') {
      endOfLine(c);
      c = read();
    }
    if (c == EOF) return null;
    int startLine = line;
    List<String> fields = new ArrayList<>();
    StringBuilder field = new StringBuilder();
    while (true) {
      if (quoting && c == '"') {
        int quoteLine = line;
        while (true) {
          int q = read();
          if (q == EOF) {
            throw new DataFileException(
                file,
                quoteLine,
                "field "
                    + (fields.size() + 1)
                    + " opens a quote that never closes. Close it with \", and write a quote"
                    + " inside a quoted field as \"\".");
          }
          if (q == '"') {
            int after = read();
            if (after == '"') {
              field.append('"');
              continue;
            }
            c = after;
            break;
          }
          if (q == '\n') line++;
          field.append((char) q);
        }
        if (c != delimiter && c != '\r' && c != '\n' && c != EOF) {
          throw new DataFileException(
              file,
              line,
              "unexpected '"
                  + (char) c
                  + "' after the closing quote of field "
                  + (fields.size() + 1)
                  + ". Quote the whole field and double the quotes inside it (\"\").");
        }
      } else {
        while (c != delimiter && c != '\r' && c != '\n' && c != EOF) {
          field.append((char) c);
          c = read();
        }
      }
      fields.add(field.toString());
      field.setLength(0);
      if (c == delimiter) {
        c = read();
        continue;
      }
      if (c != EOF) endOfLine(c);
      return new Row(startLine, ImmutableList.copyOf(fields));
    }
  }

  /** Consumes the rest of a line end that began with {@code c}. */
  private void endOfLine(int c) throws IOException {
    if (c == '\r') {
      int n = read();
      if (n != '\n') {
        // A lone CR (old Mac files) ends a line too.
        pushedBack = n;
      }
    }
    line++;
  }

  private int read() throws IOException {
    if (pushedBack != -2) {
      int c = pushedBack;
      pushedBack = -2;
      return c;
    }
    int c = in.read();
    if (!started) {
      started = true;
      if (c == '\uFEFF') c = in.read();
    }
    return c;
  }
}
