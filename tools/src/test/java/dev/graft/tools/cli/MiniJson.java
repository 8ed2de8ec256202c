package dev.graft.tools.cli;

import com.google.gson.Strictness;
import com.google.gson.stream.JsonReader;
import com.google.gson.stream.JsonToken;
import java.io.IOException;
import java.io.StringReader;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The tests' oracle that the CLI's JSON is valid and says what it means, on Gson's strict reader
 * (RFC 8259: no comments, unquoted names, trailing commas, leading zeros or raw control
 * characters). Objects become LinkedHashMaps, arrays Lists, numbers Long (integers) or Double, so
 * tests compare against plain Java collections. Gson's JsonParser would keep the last of two equal
 * keys silently; this refuses them, as it refuses trailing text and empty input.
 */
final class MiniJson {
  private MiniJson() {}

  static Object parse(String text) {
    JsonReader r = new JsonReader(new StringReader(text));
    r.setStrictness(Strictness.STRICT);
    try {
      Object v = value(r);
      if (r.peek() != JsonToken.END_DOCUMENT) throw new IllegalArgumentException("Invalid JSON: trailing text at " + r.getPath());
      return v;
    } catch (IOException | IllegalStateException e) {
      throw new IllegalArgumentException("Invalid JSON: " + e.getMessage(), e);
    }
  }

  private static Object value(JsonReader r) throws IOException {
    switch (r.peek()) {
      case BEGIN_OBJECT -> {
        Map<String, Object> m = new LinkedHashMap<>();
        r.beginObject();
        while (r.hasNext()) {
          String k = r.nextName();
          if (m.containsKey(k)) throw new IllegalArgumentException("Invalid JSON: duplicate key " + k + " at " + r.getPath());
          m.put(k, value(r));
        }
        r.endObject();
        return m;
      }
      case BEGIN_ARRAY -> {
        List<Object> l = new ArrayList<>();
        r.beginArray();
        while (r.hasNext()) l.add(value(r));
        r.endArray();
        return l;
      }
      case STRING -> {
        return r.nextString();
      }
      case NUMBER -> {
        String n = r.nextString();
        return n.matches("-?[0-9]+") ? (Object) Long.parseLong(n) : (Object) Double.parseDouble(n);
      }
      case BOOLEAN -> {
        return r.nextBoolean();
      }
      case NULL -> {
        r.nextNull();
        return null;
      }
      default -> throw new IllegalArgumentException("Invalid JSON: unexpected " + r.peek() + " at " + r.getPath());
    }
  }
}
