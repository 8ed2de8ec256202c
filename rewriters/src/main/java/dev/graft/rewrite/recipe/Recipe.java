package dev.graft.rewrite.recipe;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMap;
import com.google.common.collect.ImmutableSet;
import dev.graft.rewrite.GraphPass;
import dev.graft.rewrite.method.AppliedPass;
import dev.graft.rewrite.method.Methods;
import dev.graft.rewrite.PassManager;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
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
 * or, instead of {@code passes:}, a list of {@link Stage}s with training between them (the
 * two-stage paradigm: LayerNorm scale and shift first, then the channels that Taylor scores on
 * the tuned model rank highest):
 *
 * <pre>
 *   stages:
 *     - name: layernorm          # optional
 *       epochs: 1                # optional; the run's epochs otherwise
 *       passes:
 *         - method: layernorm-affine
 *         - method: classification-head
 *           classes: 2
 *     - passes:
 *         - method: taylor-channels
 *           select: {targets: "layer.*.ffn.down", fraction: 0.125, batches: 8}
 * </pre>
 *
 * Validation is strict and happens at load time, before any model is touched: an unknown key or
 * method, a value of the wrong type or out of range is an error that names the file, the entry
 * ({@code passes[1]}, {@code stages[1].passes[0]}) and the valid choices. Which modules the
 * targets select is checked when the passes run, against the model (a target that matches nothing
 * lists the modules that exist).
 */
public final class Recipe {
  public static final String PASSES = "passes";
  public static final String STAGES = "stages";
  public static final String DESCRIPTION = "description";
  public static final String NAME = "name";
  public static final String EPOCHS = "epochs";
  private static final ImmutableSet<String> TOP_LEVEL = ImmutableSet.of(DESCRIPTION, PASSES, STAGES, Unfreeze.KEY);
  private static final ImmutableSet<String> STAGE_KEYS = ImmutableSet.of(NAME, EPOCHS, PASSES);

  private final String source;
  private final Optional<String> description;
  private final ImmutableList<String> methods;
  private final ImmutableList<Stage> stages;
  private Optional<Unfreeze> unfreeze = Optional.empty();

  private Recipe(String source, Optional<String> description, ImmutableList<String> methods, ImmutableList<Stage> stages) {
    this.source = source;
    this.description = description;
    this.methods = methods;
    this.stages = stages;
  }

  /** Reads and validates a recipe file with the standard methods ({@link PassRegistry#STANDARD}). */
  public static Recipe load(Path file) throws IOException {
    return load(file, Methods.FACTORIES);
  }

  public static Recipe load(Path file, Map<String, PassFactory> registry) throws IOException {
    if (!Files.isRegularFile(file)) {
      throw new IllegalArgumentException("Recipe " + file + " does not exist or is not a file. Check the path.");
    }
    return parse(Files.readString(file, StandardCharsets.UTF_8), file.getFileName().toString(), registry);
  }

  /** Parses recipe text; {@code source} names it in messages. */
  public static Recipe parse(String text, String source) {
    return parse(text, source, Methods.FACTORIES);
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
      throw new IllegalArgumentException(
          where + " is empty; it needs a '" + PASSES + "' list of passes (or a '" + STAGES + "' list of stages).");
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
    if (top.containsKey(PASSES) && top.containsKey(STAGES)) {
      throw new IllegalArgumentException(
          where + ": give '" + PASSES + "' (one stage) or '" + STAGES + "' (several, with training between them),"
              + " not both. Move the passes into the first stage.");
    }
    Optional<Unfreeze> unfreeze =
        top.containsKey(Unfreeze.KEY) ? Optional.of(Unfreeze.read(where, top.get(Unfreeze.KEY))) : Optional.empty();
    if (top.containsKey(STAGES)) {
      Recipe r = staged(top.get(STAGES), source, (String) description, registry);
      r.unfreeze = unfreeze;
      return r;
    }
    Object list = top.get(PASSES);
    if (!(list instanceof List<?> entries) || entries.isEmpty()) {
      throw new IllegalArgumentException(
          where + ": '" + PASSES + "' must be a non-empty list of passes, each a map with a 'method' key, got "
              + describe(list) + ".");
    }
    Recipe r = of(entries, source, (String) description, registry);
    r.unfreeze = unfreeze;
    return r;
  }

  /**
   * A recipe from entries already in memory (the CLI's short flags build these): each a map with
   * a {@code method} key, validated exactly as a file's entries are.
   */
  public static Recipe of(List<?> entries, String source, Map<String, PassFactory> registry) {
    return of(entries, source, null, registry);
  }

  public static Recipe of(List<?> entries, String source) {
    return of(entries, source, null, Methods.FACTORIES);
  }

  private static Recipe of(List<?> entries, String source, String description, Map<String, PassFactory> registry) {
    ImmutableList.Builder<String> methods = ImmutableList.builder();
    Stage stage = stage("Recipe " + source + ", " + PASSES, "stage 1", OptionalInt.empty(), entries, registry, methods);
    return new Recipe(source, Optional.ofNullable(description), methods.build(), ImmutableList.of(stage));
  }

  private static Recipe staged(Object list, String source, String description, Map<String, PassFactory> registry) {
    String where = "Recipe " + source;
    if (!(list instanceof List<?> entries) || entries.isEmpty()) {
      throw new IllegalArgumentException(
          where + ": '" + STAGES + "' must be a non-empty list of stages, each a map with a '" + PASSES
              + "' list, got " + describe(list) + ".");
    }
    ImmutableList.Builder<String> methods = ImmutableList.builder();
    ImmutableList.Builder<Stage> stages = ImmutableList.builder();
    for (int s = 0; s < entries.size(); s++) {
      String at = where + ", " + STAGES + "[" + s + "]";
      if (!(entries.get(s) instanceof Map<?, ?> stage)) {
        throw new IllegalArgumentException(
            at + " must be a map with the keys " + String.join(", ", STAGE_KEYS) + " (" + PASSES + " required), got "
                + describe(entries.get(s)) + ".");
      }
      for (Map.Entry<?, ?> e : stage.entrySet()) {
        if (!STAGE_KEYS.contains(e.getKey())) {
          throw new IllegalArgumentException(
              at + ": unknown key " + describe(e.getKey()) + "; valid keys of a stage are "
                  + String.join(", ", STAGE_KEYS) + ".");
        }
      }
      Object name = stage.get(NAME);
      if (stage.containsKey(NAME) && !(name instanceof String n && !n.isBlank())) {
        throw new IllegalArgumentException(at + ": '" + NAME + "' must be a non-empty string, got " + describe(name) + ".");
      }
      Object epochs = stage.get(EPOCHS);
      if (stage.containsKey(EPOCHS) && !(epochs instanceof Integer n && n >= 1)) {
        throw new IllegalArgumentException(
            at + ": '" + EPOCHS + "' must be an integer of at least 1, got " + describe(epochs)
                + ". Leave it out to train the stage for the run's epochs.");
      }
      Object passes = stage.get(PASSES);
      if (!(passes instanceof List<?> l) || l.isEmpty()) {
        throw new IllegalArgumentException(
            at + ": '" + PASSES + "' must be a non-empty list of passes, each a map with a 'method' key, got "
                + describe(passes) + ".");
      }
      stages.add(
          stage(
              at + "." + PASSES,
              name != null ? (String) name : "stage " + (s + 1),
              epochs != null ? OptionalInt.of((Integer) epochs) : OptionalInt.empty(),
              l,
              registry,
              methods));
    }
    return new Recipe(source, Optional.ofNullable(description), methods.build(), stages.build());
  }

  /**
   * One stage from its pass entries; {@code at} names the list in messages ({@code Recipe x.yaml,
   * stages[1].passes}). A Taylor selection must come last: it scores the model the other passes
   * made.
   */
  private static Stage stage(
      String at, String name, OptionalInt epochs, List<?> entries, Map<String, PassFactory> registry,
      ImmutableList.Builder<String> methods) {
    ImmutableList.Builder<GraphPass> passes = ImmutableList.builder();
    TaylorSelection taylor = null;
    for (int i = 0; i < entries.size(); i++) {
      String where = at + "[" + i + "]";
      if (taylor != null) {
        throw new IllegalArgumentException(
            where + ": a taylor-channels 'select' must be the last entry of its stage (it scores the model the"
                + " stage's other passes made); move it to the end, or this entry into a later stage.");
      }
      GraphPass pass = entry(where, entries.get(i), registry);
      methods.add(methodOf(entries.get(i)));
      if (pass instanceof TaylorSelection t) {
        taylor = t;
      } else {
        passes.add(pass);
      }
    }
    return new Stage(name, passes.build(), epochs, Optional.ofNullable(taylor));
  }

  private static String methodOf(Object entry) {
    return (String) ((Map<?, ?>) entry).get(PassFactory.METHOD);
  }

  /** One validated entry as a pass; {@code at} is where it is ({@code Recipe x.yaml, passes[0]}). */
  private static GraphPass entry(String at, Object item, Map<String, PassFactory> registry) {
    if (!(item instanceof Map<?, ?> entry)) {
      throw new IllegalArgumentException(at + " must be a map with a 'method' key, got " + describe(item) + ".");
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
    try {
      GraphPass pass = factory.build().apply(options);
      if (pass instanceof TaylorSelection) return pass;
      Map<String, Object> given = new LinkedHashMap<>(values);
      given.remove(PassFactory.METHOD);
      return new AppliedPass(pass, (String) method, given);
    } catch (IllegalArgumentException e) {
      // The passes' own checks (rank > 0, dropout in [0, 1)) do not know where the entry is.
      if (e.getMessage() != null && e.getMessage().startsWith(where)) throw e;
      throw new IllegalArgumentException(where + ": " + e.getMessage(), e);
    }
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

  /** Gradual unfreezing, when the recipe asks for it ({@code unfreeze:}). */
  public Optional<Unfreeze> unfreeze() {
    return unfreeze;
  }

  /** The method of each pass, in order (across stages). */
  public ImmutableList<String> methods() {
    return methods;
  }

  /** The stages, in order; a recipe of plain {@code passes:} is one. */
  public ImmutableList<Stage> stages() {
    return stages;
  }

  /**
   * Whether the recipe needs training to apply: several stages (each trains before the next
   * applies), or a Taylor selection (it scores channels on training data).
   */
  public boolean needsTraining() {
    return stages.size() > 1 || stages.get(0).taylor().isPresent();
  }

  /**
   * The passes of a one-stage recipe, in the recipe's order. They hold configuration only; run
   * them on any model. A recipe that {@link #needsTraining} has no such list: read its
   * {@link #stages()}.
   */
  public ImmutableList<GraphPass> passes() {
    if (needsTraining()) {
      String why =
          stages.size() > 1
              ? "has " + stages.size() + " stages, with training between them"
              : "picks Taylor channels in " + stages.get(0).name() + " from training data";
      throw new IllegalStateException(
          "Recipe " + source + " " + why + ", so it is not one list of passes. Run it with graft train"
              + " (TextClassificationRun with stages()), or read stages() for the stages' own passes.");
    }
    return stages.get(0).passes();
  }

  /** A manager that runs the passes in order and verifies the model after each; see {@link #passes()}. */
  public PassManager manager() {
    return new PassManager(passes());
  }

  /** The standard methods and one line about each. */
  public static ImmutableMap<String, String> methodSummaries() {
    ImmutableMap.Builder<String, String> b = ImmutableMap.builder();
    Methods.FACTORIES.forEach((k, f) -> b.put(k, f.summary()));
    return b.buildOrThrow();
  }
}
