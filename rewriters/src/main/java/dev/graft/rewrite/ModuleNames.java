package dev.graft.rewrite;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.stream.Collectors;

/**
 * Module names for an error message that lists what exists. A few names are listed as they are; a
 * long list (a 12-layer encoder has 72 linear modules) is folded into the globs a recipe would
 * write, each with the layers it spans, so that the message stays readable and its parts can be
 * copied into a recipe:
 *
 * <pre>
 *   layer.0.attention.query, ..., layer.11.ffn.down, pooler.dense
 *     =>  73 modules, globs in layers 0..11: layer.*.attention.query, ..., layer.*.ffn.down, pooler.dense
 * </pre>
 *
 * A name's first all-digit segment is its layer; names with more than one (a CNN's {@code
 * stage.2.block.1.conv.pw}) fold on every such segment and say how many modules they stand for.
 */
public final class ModuleNames {
  /** Lists of at most this many names are given whole. */
  static final int WHOLE = 16;

  private ModuleNames() {}

  /** The names, whole or folded (see the class comment), joined with ", ". */
  public static String describe(List<String> names) {
    if (names.size() <= WHOLE) return String.join(", ", names);
    Map<String, List<String>> groups = new LinkedHashMap<>();
    for (String n : names) groups.computeIfAbsent(glob(n), k -> new ArrayList<>()).add(n);
    if (groups.size() == names.size()) return String.join(", ", names);
    // One span shared by every folded glob goes in front, once; otherwise each glob says its own.
    TreeSet<String> spans = new TreeSet<>();
    for (Map.Entry<String, List<String>> g : groups.entrySet()) {
      if (g.getValue().size() > 1) spans.add(span(g.getKey(), g.getValue()));
    }
    boolean shared = spans.size() == 1 && spans.first().startsWith("in layers");
    List<String> parts = new ArrayList<>();
    for (Map.Entry<String, List<String>> g : groups.entrySet()) {
      List<String> members = g.getValue();
      if (members.size() == 1) {
        parts.add(members.get(0));
      } else {
        parts.add(g.getKey() + (shared ? "" : " (" + span(g.getKey(), members) + ")"));
      }
    }
    return names.size() + " modules" + (shared ? ", globs " + spans.first() : "") + ": " + String.join(", ", parts);
  }

  /** The name with every all-digit segment replaced by {@code *}. */
  private static String glob(String name) {
    return Arrays.stream(name.split("\\.", -1))
        .map(s -> !s.isEmpty() && s.chars().allMatch(Character::isDigit) ? "*" : s)
        .collect(Collectors.joining("."));
  }

  /** "in layers 0..11" (or "in layers 0, 2, 5"), or "N modules" for a glob with several numbers. */
  private static String span(String glob, List<String> members) {
    if (glob.indexOf('*') != glob.lastIndexOf('*')) return members.size() + " modules";
    int segment = List.of(glob.split("\\.", -1)).indexOf("*");
    TreeSet<Integer> layers = new TreeSet<>();
    for (String m : members) layers.add(Integer.parseInt(m.split("\\.", -1)[segment]));
    int lo = layers.first();
    int hi = layers.last();
    if (hi - lo + 1 == layers.size()) return "in layers " + lo + ".." + hi;
    return "in layers " + layers.stream().map(String::valueOf).collect(Collectors.joining(", "));
  }
}
