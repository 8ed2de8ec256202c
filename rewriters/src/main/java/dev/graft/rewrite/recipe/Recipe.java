package dev.graft.rewrite.recipe;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMap;
import com.google.common.collect.ImmutableSet;
import dev.graft.rewrite.GraphPass;
import dev.graft.rewrite.PassManager;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.Yaml;
import org.yaml.snakeyaml.constructor.SafeConstructor;
import org.yaml.snakeyaml.error.YAMLException;

/**
 * A list of passes with their options and targets, read from a YAML or JSON file (YAML is a
 * superset of JSON, so one parser reads both):
 *
 * <pre>
 *   description: LoRA r=8 on every layer's query and value   # optional
 *   passes:
 *     - method: lora
 *       targets: ["layer.*.attention.query", "layer.*.attention.value"]
 *       layers: [0, 5]          # optional, inclusive
 *       rank: 8
 *       alpha: 16
 *     - method: classification-head
 *       classes: 2
 * </pre>
 *
 * Validation is strict and happens at load time, before any model is touched: an unknown key or
 * method, a value of the wrong type or out of range is an error that names the file, the entry
 * ({@code passes[1]}) and the valid choices. Which modules the targets select is checked when the
 * passes run, against the model (a target that matches nothing lists the modules that exist).
 */
public final class Recipe {
  public static final String PASSES = "passes";
  public static final String DESCRIPTION = "description";
  private static final ImmutableSet<String> TOP_LEVEL = ImmutableSet.of(DESCRIPTION, PASSES);

  private final String source;
  private final Optional<String> description;
  private final ImmutableList<String> methods;
  private final ImmutableList<GraphPass> passes;

  private Recipe(String source, Optional<String> description, ImmutableList<String> methods, ImmutableList<GraphPass> passes) {
    this.source = source;
    this.description = description;
    this.methods = methods;
    this.passes = passes;
  }

  /** Reads and validates a recipe file with the standard methods ({@link PassRegistry#STANDARD}). */
  public static Recipe load(Path file) throws IOException {
    return load(file, PassRegistry.STANDARD);
  }

  public static Recipe load(Path file, Map<String, PassFactory> registry) throws IOException {
    if (!Files.isRegularFile(file)) {
      throw new IllegalArgumentException("Recipe " + file + " does not exist or is not a file. Check the path.");
    }
    return parse(Files.readString(file, StandardCharsets.UTF_8), file.getFileName().toString(), registry);
  }

  /** Parses recipe text; {@code source} names it in messages. */
  public static Recipe parse(String text, String source) {
    return parse(text, source, PassRegistry.STANDARD);
  }

  public static Recipe parse(String text, String source, Map<String, PassFactory> registry) {
    LoaderOptions options = new LoaderOptions();
    options.setAllowDuplicateKeys(false);
    Object doc;
    try {
      doc = new Yaml(new SafeConstructor(options)).load(text);
    } catch (YAMLException e) {
      throw new IllegalArgumentException("Recipe " + source + " is not valid YAML or JSON: " + e.getMessage(), e);
    }
    String where = "Recipe " + source;
    if (doc == null) {
      throw new IllegalArgumentException(where + " is empty; it needs a '" + PASSES + "' list of passes.");
    }
    if (!(doc instanceof Map<?, ?> top)) {
      throw new IllegalArgumentException(
          where + " must be a map with the keys " + TOP_LEVEL + ", got " + describe(doc) + ".");
    }
    for (Object k : top.keySet()) {
      if (!TOP_LEVEL.contains(k)) {
        throw new IllegalArgumentException(
            where + ": unknown key '" + k + "' at the top level; valid keys are " + String.join(", ", TOP_LEVEL) + ".");
      }
    }
    Object description = top.get(DESCRIPTION);
    if (description != null && !(description instanceof String)) {
      throw new IllegalArgumentException(where + ": '" + DESCRIPTION + "' must be a string, got " + describe(description));
    }
    Object list = top.get(PASSES);
    if (!(list instanceof List<?> entries) || entries.isEmpty()) {
      throw new IllegalArgumentException(
          where + ": '" + PASSES + "' must be a non-empty list of passes, each a map with a 'method' key, got "
              + describe(list) + ".");
    }
    return of(entries, source, (String) description, registry);
  }

  /**
   * A recipe from entries already in memory (the CLI's short flags build these): each a map with
   * a {@code method} key, validated exactly as a file's entries are.
   */
  public static Recipe of(List<?> entries, String source, Map<String, PassFactory> registry) {
    return of(entries, source, null, registry);
  }

  public static Recipe of(List<?> entries, String source) {
    return of(entries, source, null, PassRegistry.STANDARD);
  }

  private static Recipe of(List<?> entries, String source, String description, Map<String, PassFactory> registry) {
    ImmutableList.Builder<String> methods = ImmutableList.builder();
    ImmutableList.Builder<GraphPass> passes = ImmutableList.builder();
    for (int i = 0; i < entries.size(); i++) {
      String at = "Recipe " + source + ", " + PASSES + "[" + i + "]";
      if (!(entries.get(i) instanceof Map<?, ?> entry)) {
        throw new IllegalArgumentException(at + " must be a map with a 'method' key, got " + describe(entries.get(i)) + ".");
      }
      Object method = entry.get(PassFactory.METHOD);
      PassFactory factory = method instanceof String m ? registry.get(m) : null;
      if (factory == null) {
        throw new IllegalArgumentException(
            at + ": " + (method == null ? "no 'method' given" : "unknown method " + describe(method))
                + "; valid methods are " + String.join(", ", registry.keySet()) + ".");
      }
      String where = at + " (" + method + ")";
      Map<String, Object> values = new LinkedHashMap<>();
      for (Map.Entry<?, ?> e : entry.entrySet()) {
        if (!(e.getKey() instanceof String key) || !factory.keys().contains(key)) {
          throw new IllegalArgumentException(
              where + ": unknown option " + describe(e.getKey()) + "; valid options for " + method + " are "
                  + String.join(", ", factory.keys()) + ".");
        }
        if (e.getValue() == null) {
          throw new IllegalArgumentException(where + ": option '" + key + "' has no value; give one or remove it.");
        }
        values.put(key, e.getValue());
      }
      PassOptions options = new PassOptions(where, (String) method, factory, values);
      GraphPass pass;
      try {
        pass = factory.build().apply(options);
      } catch (IllegalArgumentException e) {
        // The passes' own checks (rank > 0, dropout in [0, 1)) do not know where the entry is.
        if (e.getMessage() != null && e.getMessage().startsWith(where)) throw e;
        throw new IllegalArgumentException(where + ": " + e.getMessage(), e);
      }
      methods.add((String) method);
      passes.add(pass);
    }
    return new Recipe(source, Optional.ofNullable(description), methods.build(), passes.build());
  }

  private static String describe(Object v) {
    if (v == null) return "nothing";
    if (v instanceof String s) return "'" + s + "'";
    if (v instanceof List<?>) return "a list";
    if (v instanceof Map<?, ?>) return "a map";
    return v.getClass().getSimpleName().toLowerCase() + " " + v;
  }

  /** Where the recipe came from, for messages. */
  public String source() {
    return source;
  }

  public Optional<String> description() {
    return description;
  }

  /** The method of each pass, in order. */
  public ImmutableList<String> methods() {
    return methods;
  }

  /** The passes, in the recipe's order. They hold configuration only; run them on any model. */
  public ImmutableList<GraphPass> passes() {
    return passes;
  }

  /** A manager that runs the passes in order and verifies the model after each. */
  public PassManager manager() {
    return new PassManager(passes);
  }

  /** The standard methods and one line about each. */
  public static ImmutableMap<String, String> methodSummaries() {
    ImmutableMap.Builder<String, String> b = ImmutableMap.builder();
    PassRegistry.STANDARD.forEach((k, f) -> b.put(k, f.summary()));
    return b.buildOrThrow();
  }
}
