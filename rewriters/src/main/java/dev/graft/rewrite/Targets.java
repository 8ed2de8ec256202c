package dev.graft.rewrite;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Node;
import dev.graft.ir.pattern.MatchResult;
import dev.graft.rewrite.discover.Module;
import java.util.List;
import java.util.OptionalInt;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * Which modules a pass applies to: a module-name glob or regex and a range of layers.
 *
 * <p>Globs match whole names, segment by segment: {@code *} is any run of characters without a
 * dot, {@code **} any run at all, {@code ?} one character, {@code {query,value}} either word.
 * {@code layer.*.attention.{query,value}} selects every layer's query and value projections.
 */
public record Targets(String spec, Pattern pattern, int fromLayer, int toLayer) {

  public Targets {
    checkArgument(fromLayer <= toLayer, "layer range %s..%s is empty", fromLayer, toLayer);
  }

  /** Every module of the pass's kind. */
  public static Targets all() {
    return new Targets("**", Pattern.compile(".*"), Integer.MIN_VALUE, Integer.MAX_VALUE);
  }

  public static Targets glob(String glob) {
    return new Targets(glob, Pattern.compile(globToRegex(glob)), Integer.MIN_VALUE, Integer.MAX_VALUE);
  }

  public static Targets regex(String regex) {
    try {
      return new Targets("/" + regex + "/", Pattern.compile(regex), Integer.MIN_VALUE, Integer.MAX_VALUE);
    } catch (PatternSyntaxException e) {
      throw new IllegalArgumentException("Target regex '" + regex + "' is invalid: " + e.getDescription(), e);
    }
  }

  /** Only modules in layers {@code from..to}, both inclusive; modules outside layers drop out. */
  public Targets layers(int from, int to) {
    return new Targets(spec, pattern, from, to);
  }

  public boolean matches(Module m) {
    return check(m).matched();
  }

  /** {@code m}, or why these targets leave it out: its name, or its layer. */
  public MatchResult<Module> check(Module m) {
    Node at = m.nodes().isEmpty() ? null : m.nodes().get(0);
    if (!pattern.matcher(m.name()).matches()) {
      return MatchResult.fail("name does not match '" + spec + "'", at);
    }
    if (fromLayer == Integer.MIN_VALUE && toLayer == Integer.MAX_VALUE) return MatchResult.match(m);
    OptionalInt l = m.layer();
    if (l.isEmpty()) return MatchResult.fail("in no layer, and the targets take layers " + fromLayer + ".." + toLayer, at);
    if (l.getAsInt() < fromLayer || l.getAsInt() > toLayer) {
      return MatchResult.fail("in layer " + l.getAsInt() + ", outside layers " + fromLayer + ".." + toLayer, at);
    }
    return MatchResult.match(m);
  }

  /**
   * The candidates that match; an error listing the candidates' names when none does, so a typo
   * in a recipe shows what exists.
   */
  public <M extends Module> ImmutableList<M> select(List<M> candidates, String pass, String kind) {
    ImmutableList<M> hits = candidates.stream().filter(this::matches).collect(ImmutableList.toImmutableList());
    if (hits.isEmpty()) {
      String names = ModuleNames.describe(candidates.stream().map(Module::name).toList());
      throw new IllegalArgumentException(
          pass
              + ": target '"
              + describe()
              + "' matches no "
              + kind
              + " module. "
              + (candidates.isEmpty()
                  ? "The model has no " + kind + " modules."
                  : "The " + kind + " modules are: " + names + ". Use one of these names or a glob such as '"
                      + example(candidates.get(0).name())
                      + "'.")
              + " graft rewrite --dry-run --explain says why each candidate was refused.");
    }
    return hits;
  }

  public String describe() {
    if (fromLayer == Integer.MIN_VALUE && toLayer == Integer.MAX_VALUE) return spec;
    return spec + " in layers " + fromLayer + ".." + toLayer;
  }

  private static String example(String name) {
    return name.replaceFirst("^layer\\.\\d+\\.", "layer.*.");
  }

  static String globToRegex(String glob) {
    StringBuilder r = new StringBuilder();
    int depth = 0;
    for (int i = 0; i < glob.length(); i++) {
      char c = glob.charAt(i);
      switch (c) {
        case '*' -> {
          if (i + 1 < glob.length() && glob.charAt(i + 1) == '*') {
            r.append(".*");
            i++;
          } else {
            r.append("[^.]*");
          }
        }
        case '?' -> r.append("[^.]");
        case '{' -> {
          depth++;
          r.append("(?:");
        }
        case '}' -> {
          checkArgument(depth > 0, "Glob '%s' has an unmatched '}'", glob);
          depth--;
          r.append(')');
        }
        case ',' -> r.append(depth > 0 ? "|" : ",");
        default -> {
          if ("\\.[]()+^$|".indexOf(c) >= 0) r.append('\\');
          r.append(c);
        }
      }
    }
    checkArgument(depth == 0, "Glob '%s' has an unmatched '{'", glob);
    return r.toString();
  }
}
