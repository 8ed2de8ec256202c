package dev.graft.ir.io;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The small JSON subset the file headers need (safetensors), written and read without a
 * dependency.
 *
 * <p>Values map to Java as: object = {@code Map<String, Object>} (insertion order kept), array =
 * {@code List<Object>}, string = {@code String}, integer = {@code Long}, other number = {@code
 * Double}, {@code true}/{@code false} = {@code Boolean}, {@code null} = {@link #NULL}. Parsing is
 * strict RFC 8259: no comments, no trailing commas, no duplicate keys (a duplicated tensor name
 * would otherwise silently shadow the first), and trailing whitespace only.
 */
final class Json {
  /** JSON null; a sentinel because maps of parsed objects are also read with {@code get}. */
  static final Object NULL =
      new Object() {
        @Override
        public String toString() {
          return "null";
        }
      };

  /** A syntax error; the message gives the character offset. */
  static final class ParseException extends RuntimeException {
    ParseException(String message) {
      super(message);
    }
  }

  private Json() {}

  // ---- writing ----------------------------------------------------------------------------------

  /** Compact JSON (no spaces) for a value built from the types listed in the class comment. */
  static String write(Object value) {
    StringBuilder sb = new StringBuilder();
    write(value, sb);
    return sb.toString();
  }

  private static void write(Object v, StringBuilder sb) {
    if (v == null || v == NULL) {
      sb.append("null");
    } else if (v instanceof String s) {
      writeString(s, sb);
    } else if (v instanceof Long || v instanceof Integer || v instanceof Short || v instanceof Byte) {
      sb.append(((Number) v).longValue());
    } else if (v instanceof Double || v instanceof Float) {
      double d = ((Number) v).doubleValue();
      if (!Double.isFinite(d)) {
        throw new IllegalArgumentException("JSON has no representation for the number " + d);
      }
      sb.append(d);
    } else if (v instanceof Boolean b) {
      sb.append(b);
    } else if (v instanceof Map<?, ?> m) {
      sb.append('{');
      boolean first = true;
      for (Map.Entry<?, ?> e : m.entrySet()) {
        if (!(e.getKey() instanceof String key)) {
          throw new IllegalArgumentException("JSON object keys must be strings, got " + e.getKey());
        }
        if (!first) sb.append(',');
        first = false;
        writeString(key, sb);
        sb.append(':');
        write(e.getValue(), sb);
      }
      sb.append('}');
    } else if (v instanceof List<?> l) {
      sb.append('[');
      for (int i = 0; i < l.size(); i++) {
        if (i > 0) sb.append(',');
        write(l.get(i), sb);
      }
      sb.append(']');
    } else if (v instanceof long[] a) {
      sb.append('[');
      for (int i = 0; i < a.length; i++) {
        if (i > 0) sb.append(',');
        sb.append(a[i]);
      }
      sb.append(']');
    } else {
      throw new IllegalArgumentException("Cannot write " + v.getClass().getName() + " as JSON");
    }
  }

  private static void writeString(String s, StringBuilder sb) {
    sb.append('"');
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      switch (c) {
        case '"' -> sb.append("\\\"");
        case '\\' -> sb.append("\\\\");
        case '\n' -> sb.append("\\n");
        case '\r' -> sb.append("\\r");
        case '\t' -> sb.append("\\t");
        case '\b' -> sb.append("\\b");
        case '\f' -> sb.append("\\f");
        default -> {
          if (c < 0x20) {
            sb.append(String.format("\\u%04x", (int) c));
          } else {
            // Everything else, non-ASCII included, goes through as is: the header is UTF-8.
            sb.append(c);
          }
        }
      }
    }
    sb.append('"');
  }

  // ---- reading ----------------------------------------------------------------------------------

  /** Parses one JSON value that spans all of {@code text} (surrounding whitespace aside). */
  static Object parse(String text) {
    Parser p = new Parser(text);
    p.skipWhitespace();
    Object v = p.value(0);
    p.skipWhitespace();
    if (p.pos != text.length()) {
      throw p.error("unexpected '" + text.charAt(p.pos) + "' after the end of the value");
    }
    return v;
  }

  private static final class Parser {
    /** Deep enough for any header; stops a hostile file from overflowing the stack. */
    private static final int MAX_DEPTH = 64;

    private final String s;
    private int pos;

    Parser(String s) {
      this.s = s;
    }

    ParseException error(String what) {
      return new ParseException("JSON error at character " + pos + ": " + what);
    }

    void skipWhitespace() {
      while (pos < s.length()) {
        char c = s.charAt(pos);
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') pos++;
        else break;
      }
    }

    Object value(int depth) {
      if (depth > MAX_DEPTH) throw error("nested deeper than " + MAX_DEPTH + " levels");
      if (pos >= s.length()) throw error("unexpected end of text, expected a value");
      char c = s.charAt(pos);
      return switch (c) {
        case '{' -> object(depth);
        case '[' -> array(depth);
        case '"' -> string();
        case 't' -> literal("true", Boolean.TRUE);
        case 'f' -> literal("false", Boolean.FALSE);
        case 'n' -> literal("null", NULL);
        default -> {
          if (c == '-' || (c >= '0' && c <= '9')) yield number();
          throw error("unexpected '" + c + "', expected a value");
        }
      };
    }

    private Object literal(String word, Object v) {
      if (!s.startsWith(word, pos)) throw error("expected '" + word + "'");
      pos += word.length();
      return v;
    }

    private Map<String, Object> object(int depth) {
      pos++; // '{'
      Map<String, Object> out = new LinkedHashMap<>();
      skipWhitespace();
      if (peek() == '}') {
        pos++;
        return out;
      }
      while (true) {
        skipWhitespace();
        if (peek() != '"') throw error("expected a string key");
        int keyAt = pos;
        String key = string();
        skipWhitespace();
        expect(':');
        skipWhitespace();
        Object v = value(depth + 1);
        if (out.containsKey(key)) {
          pos = keyAt;
          throw error("duplicate key \"" + key + "\"");
        }
        out.put(key, v);
        skipWhitespace();
        char c = peek();
        pos++;
        if (c == '}') return out;
        if (c != ',') {
          pos--;
          throw error("expected ',' or '}' in an object");
        }
      }
    }

    private List<Object> array(int depth) {
      pos++; // '['
      List<Object> out = new ArrayList<>();
      skipWhitespace();
      if (peek() == ']') {
        pos++;
        return Collections.unmodifiableList(out);
      }
      while (true) {
        skipWhitespace();
        out.add(value(depth + 1));
        skipWhitespace();
        char c = peek();
        pos++;
        if (c == ']') return Collections.unmodifiableList(out);
        if (c != ',') {
          pos--;
          throw error("expected ',' or ']' in an array");
        }
      }
    }

    private String string() {
      pos++; // opening quote
      StringBuilder sb = new StringBuilder();
      while (true) {
        if (pos >= s.length()) throw error("unterminated string");
        char c = s.charAt(pos++);
        if (c == '"') return sb.toString();
        if (c < 0x20) {
          pos--;
          throw error("raw control character in a string; it must be escaped");
        }
        if (c != '\\') {
          sb.append(c);
          continue;
        }
        if (pos >= s.length()) throw error("unterminated escape");
        char e = s.charAt(pos++);
        switch (e) {
          case '"' -> sb.append('"');
          case '\\' -> sb.append('\\');
          case '/' -> sb.append('/');
          case 'b' -> sb.append('\b');
          case 'f' -> sb.append('\f');
          case 'n' -> sb.append('\n');
          case 'r' -> sb.append('\r');
          case 't' -> sb.append('\t');
          case 'u' -> {
            if (pos + 4 > s.length()) throw error("truncated \\u escape");
            int cp = 0;
            for (int i = 0; i < 4; i++) {
              int d = Character.digit(s.charAt(pos + i), 16);
              if (d < 0) throw error("bad hex digit in \\u escape");
              cp = cp * 16 + d;
            }
            pos += 4;
            // Surrogate pairs arrive as two escapes; appending both chars reassembles them.
            sb.append((char) cp);
          }
          default -> {
            pos--;
            throw error("unknown escape '\\" + e + "'");
          }
        }
      }
    }

    private Object number() {
      int start = pos;
      if (peek() == '-') pos++;
      if (peek() == '0') {
        pos++;
      } else if (isDigit(peek())) {
        while (isDigit(peek())) pos++;
      } else {
        throw error("expected a digit");
      }
      boolean integral = true;
      if (peek() == '.') {
        integral = false;
        pos++;
        if (!isDigit(peek())) throw error("expected a digit after '.'");
        while (isDigit(peek())) pos++;
      }
      if (peek() == 'e' || peek() == 'E') {
        integral = false;
        pos++;
        if (peek() == '+' || peek() == '-') pos++;
        if (!isDigit(peek())) throw error("expected a digit in the exponent");
        while (isDigit(peek())) pos++;
      }
      String text = s.substring(start, pos);
      if (integral) {
        try {
          return Long.parseLong(text);
        } catch (NumberFormatException e) {
          pos = start;
          throw error("integer " + text + " does not fit in 64 bits");
        }
      }
      return Double.parseDouble(text);
    }

    private static boolean isDigit(char c) {
      return c >= '0' && c <= '9';
    }

    private char peek() {
      return pos < s.length() ? s.charAt(pos) : '\0';
    }

    private void expect(char c) {
      if (peek() != c) throw error("expected '" + c + "'");
      pos++;
    }
  }
}
