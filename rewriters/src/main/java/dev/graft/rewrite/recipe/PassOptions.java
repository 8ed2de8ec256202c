package dev.graft.rewrite.recipe;

import static com.google.common.base.Preconditions.checkState;

import com.google.common.base.Ascii;
import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMap;
import dev.graft.rewrite.Targets;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

/**
 * The options of one recipe entry, read with their types checked. Every error names where the
 * entry is ({@code recipe lora.yaml, passes[0] (lora)}), the option, what it got and what it
 * accepts. A factory may read only the keys its {@link PassFactory} declares, so the declared
 * list, which strict validation and help texts show, is the truth.
 */
public final class PassOptions {
  private static final Pattern JSON_NUMBER = Pattern.compile("-?(?:0|[1-9]\\d*)(?:\\.\\d+)?(?:[eE][+-]?\\d+)?");

  private final String where;
  private final String method;
  private final PassFactory factory;
  private final ImmutableMap<String, Object> values;

  PassOptions(String where, String method, PassFactory factory, Map<String, Object> values) {
    this.where = where;
    this.method = method;
    this.factory = factory;
    this.values = ImmutableMap.copyOf(values);
  }

  /** The recipe method, e.g. {@code lora}. */
  public String method() {
    return method;
  }

  /** Where the entry is, for messages: {@code recipe lora.yaml, passes[0] (lora)}. */
  public String where() {
    return where;
  }

  public boolean has(String key) {
    return raw(key) != null;
  }

  /** An error that says where the entry is. */
  public IllegalArgumentException error(String message) {
    return new IllegalArgumentException(where + ": " + message);
  }

  public int integer(String key, int fallback) {
    Object v = raw(key);
    if (v == null) return fallback;
    if ((v instanceof Integer || v instanceof Long) && ((Number) v).longValue() == (int) ((Number) v).longValue()) {
      return ((Number) v).intValue();
    }
    throw wrongType(key, v, "an integer");
  }

  public long longInteger(String key, long fallback) {
    Object v = raw(key);
    if (v == null) return fallback;
    if (v instanceof Integer || v instanceof Long) return ((Number) v).longValue();
    if (v instanceof BigInteger b && b.bitLength() < 64) return b.longValue();
    throw wrongType(key, v, "an integer");
  }

  public double number(String key, double fallback) {
    Object v = raw(key);
    if (v == null) return fallback;
    if (v instanceof Integer || v instanceof Long || v instanceof Double || v instanceof Float) {
      return ((Number) v).doubleValue();
    }
    // YAML 1.1 reads 1e-3 (no dot) as a string; it is a number in JSON, which recipes also are.
    if (v instanceof String s && JSON_NUMBER.matcher(s).matches()) return Double.parseDouble(s);
    throw wrongType(key, v, "a number");
  }

  public boolean bool(String key, boolean fallback) {
    Object v = raw(key);
    if (v == null) return fallback;
    if (v instanceof Boolean b) return b;
    throw wrongType(key, v, "true or false");
  }

  public String string(String key, String fallback) {
    Object v = raw(key);
    if (v == null) return fallback;
    if (v instanceof String s) return s;
    throw wrongType(key, v, "a string");
  }

  /**
   * One of an enum's constants, written in lower case with dashes ({@code kaiming-uniform} for
   * {@code KAIMING_UNIFORM}).
   */
  public <E extends Enum<E>> E choice(String key, Class<E> type, E fallback) {
    Object v = raw(key);
    if (v == null) return fallback;
    String s = v instanceof String str ? str : String.valueOf(v);
    for (E e : type.getEnumConstants()) {
      if (spell(e).equals(Ascii.toLowerCase(s).replace('_', '-'))) return e;
    }
    throw error(
        "option '" + key + "' is '" + s + "'; choose one of " + Arrays.stream(type.getEnumConstants())
            .map(PassOptions::spell)
            .collect(Collectors.joining(", ")));
  }

  /** How an enum constant is written in recipes and on the command line. */
  public static String spell(Enum<?> e) {
    return Ascii.toLowerCase(e.name()).replace('_', '-');
  }

  /** A list of integers (a lone integer counts as a list of one). */
  public ImmutableList<Integer> integers(String key) {
    Object v = raw(key);
    if (v == null) return ImmutableList.of();
    List<?> items = v instanceof List<?> l ? l : List.of(v);
    ImmutableList.Builder<Integer> out = ImmutableList.builder();
    for (Object o : items) {
      if (!(o instanceof Integer i)) throw wrongType(key, v, "a list of integers");
      out.add(i);
    }
    return out.build();
  }

  /**
   * A map from strings to lists of integers: {@code {layer.0.ffn.up: [3, 17]}}; keys in the order
   * written.
   */
  public ImmutableMap<String, ImmutableList<Integer>> integerLists(String key) {
    Object v = raw(key);
    if (v == null) return ImmutableMap.of();
    if (!(v instanceof Map<?, ?> m)) throw wrongType(key, v, "a map from names to lists of integers");
    Map<String, ImmutableList<Integer>> out = new LinkedHashMap<>();
    for (Map.Entry<?, ?> e : m.entrySet()) {
      Object list = e.getValue();
      List<?> items = list instanceof List<?> l ? l : null;
      if (!(e.getKey() instanceof String name) || items == null || items.stream().anyMatch(o -> !(o instanceof Integer))) {
        throw wrongType(key, v, "a map from names to lists of integers");
      }
      out.put(name, items.stream().map(o -> (Integer) o).collect(ImmutableList.toImmutableList()));
    }
    return ImmutableMap.copyOf(out);
  }

  /**
   * The map under {@code key} read as a nested entry whose keys {@code schema} declares (without
   * {@code method}), with the same strict checks and messages as a top-level entry: {@code select:
   * {targets: ..., fraction: ...}} of {@code taylor-channels}. Empty when the key is absent.
   */
  Optional<PassOptions> nested(String key, PassFactory schema) {
    Object v = raw(key);
    if (v == null) return Optional.empty();
    List<String> valid = schema.keys().stream().filter(k -> !k.equals(PassFactory.METHOD)).toList();
    if (!(v instanceof Map<?, ?> m)) {
      throw wrongType(key, v, "a map with the keys " + String.join(", ", valid));
    }
    String at = where + ", " + key;
    Map<String, Object> values = new LinkedHashMap<>();
    for (Map.Entry<?, ?> e : m.entrySet()) {
      if (!(e.getKey() instanceof String k) || !valid.contains(k)) {
        throw new IllegalArgumentException(
            at + ": unknown option " + show(e.getKey()) + "; valid options of '" + key + "' are "
                + String.join(", ", valid) + ".");
      }
      if (e.getValue() == null) {
        throw new IllegalArgumentException(at + ": option '" + k + "' has no value; give one or remove it.");
      }
      values.put(k, e.getValue());
    }
    return Optional.of(new PassOptions(at, method, schema, values));
  }

  /**
   * The modules the entry adapts: {@code targets} (one glob or a list; {@code /regex/} for a
   * regular expression) restricted to {@code layers} ({@code [from, to]}, {@code "from-to"} or
   * one layer, inclusive), or the method's default targets.
   */
  public Targets targets() {
    checkState(factory.isTargeted(), "%s takes no targets; its factory must not read them", method);
    Object t = raw(PassFactory.TARGETS);
    List<String> specs = new ArrayList<>();
    if (t == null) {
      specs.add(factory.defaultTargets().orElseThrow());
    } else if (t instanceof String s) {
      specs.add(s);
    } else if (t instanceof List<?> l && !l.isEmpty() && l.stream().allMatch(o -> o instanceof String)) {
      l.forEach(o -> specs.add((String) o));
    } else {
      throw wrongType(PassFactory.TARGETS, t, "a module-name glob or a non-empty list of globs");
    }
    Targets targets;
    try {
      targets = union(specs);
    } catch (IllegalArgumentException e) {
      throw error("option 'targets': " + e.getMessage());
    }
    Object layers = raw(PassFactory.LAYERS);
    if (layers == null) return targets;
    int[] range = layerRange(layers);
    return targets.layers(range[0], range[1]);
  }

  /** One Targets matching any of the globs (or {@code /regex/}s). */
  static Targets union(List<String> specs) {
    if (specs.size() == 1) return single(specs.get(0));
    String regex =
        specs.stream().map(s -> "(?:" + single(s).pattern().pattern() + ")").collect(Collectors.joining("|"));
    Targets any = Targets.all();
    return new Targets(String.join(", ", specs), Pattern.compile(regex), any.fromLayer(), any.toLayer());
  }

  private static Targets single(String spec) {
    if (spec.length() >= 2 && spec.startsWith("/") && spec.endsWith("/")) {
      return Targets.regex(spec.substring(1, spec.length() - 1));
    }
    return Targets.glob(spec);
  }

  private int[] layerRange(Object v) {
    String accepts = "a layer, [from, to] or \"from-to\" (inclusive, from <= to)";
    int from;
    int to;
    if (v instanceof Integer i) {
      from = i;
      to = i;
    } else if (v instanceof List<?> l && l.size() == 2 && l.get(0) instanceof Integer a && l.get(1) instanceof Integer b) {
      from = a;
      to = b;
    } else if (v instanceof String s && s.matches("\\s*\\d+\\s*-\\s*\\d+\\s*")) {
      String[] p = s.split("-");
      from = Integer.parseInt(p[0].trim());
      to = Integer.parseInt(p[1].trim());
    } else {
      throw wrongType(PassFactory.LAYERS, v, accepts);
    }
    if (from < 0 || from > to) throw wrongType(PassFactory.LAYERS, v, accepts);
    return new int[] {from, to};
  }

  private Object raw(String key) {
    checkState(
        factory.keys().contains(key),
        "The factory of '%s' reads option '%s', which it does not declare; add it to its options",
        method,
        key);
    return values.get(key);
  }

  private IllegalArgumentException wrongType(String key, Object v, String expected) {
    return error("option '" + key + "' must be " + expected + ", got " + show(v));
  }

  private static String show(Object v) {
    return v instanceof String s ? "'" + s + "'" : String.valueOf(v);
  }
}
