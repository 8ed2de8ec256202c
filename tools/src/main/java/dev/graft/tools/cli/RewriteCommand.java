package dev.graft.tools.cli;

import dev.graft.ir.Model;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.ir.io.ModelIO;
import dev.graft.rewrite.GraphPass;
import dev.graft.rewrite.ModulePass;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.recipe.PassFactory;
import dev.graft.rewrite.method.AppliedPass;
import dev.graft.rewrite.method.Methods;
import dev.graft.rewrite.recipe.Recipe;
import dev.graft.trainer.train.Int8Dequantization;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code graft rewrite}: insert PEFT modules, from a recipe file or from short flags for the
 * common cases. The flags become recipe entries, so they are validated by the same code as a
 * recipe file's.
 */
@Command(
    name = "rewrite",
    mixinStandardHelpOptions = true,
    versionProvider = GraftVersion.class,
    description = {
      "Insert PEFT modules into a model and record which initializers are trainable (in the"
          + " model's metadata, for train and export). Targets are module names, as 'graft inspect'"
          + " lists them; a target that matches nothing is an error that lists the modules there are.",
      "Give a recipe (YAML or JSON, see examples/recipes) or the short flags. The model is"
          + " verified after each pass and written to a temporary file that is moved into place."
    },
    footerHeading = "%nExamples:%n",
    footer = {
      "  graft rewrite in.onnx out.onnx --recipe examples/recipes/lora.yaml",
      "  graft rewrite in.onnx out.onnx --lora --rank 8 --alpha 16",
      "      LoRA on every layer's query and value (the default targets)",
      "  graft rewrite in.onnx out.onnx --lora --targets 'layer.*.ffn.*' --layers 3-5",
      "  graft rewrite in.onnx out.onnx --layernorm-affine --head 2:mean",
      "  graft rewrite in.onnx --recipe examples/recipes/houlsby.yaml --dry-run",
      "      list what would change; writes nothing",
      "  graft rewrite in.onnx --lora --targets 'layer.*.attention.query' --layers 3-5 --dry-run --explain",
      "      what the targets match and why each other candidate was refused",
      "",
      "A recipe's methods: one example per method in examples/recipes, named after it."
    })
final class RewriteCommand implements Callable<Integer> {
  private static final String FLAGS_SOURCE = "(command-line flags)";

  @Spec CommandSpec spec;

  @Parameters(index = "0", paramLabel = "IN", description = "The .onnx file to rewrite.")
  Path in;

  @Parameters(
      index = "1",
      arity = "0..1",
      paramLabel = "OUT",
      description = "Where to write the rewritten model; its folder must exist. Not needed with --dry-run.")
  Path out;

  @Option(names = "--recipe", paramLabel = "FILE", description = "A recipe file (YAML or JSON) listing the passes.")
  Path recipe;

  @Option(names = "--lora", description = "Add LoRA (default targets: every layer's query and value).")
  boolean lora;

  @Option(names = "--rank", paramLabel = "R", description = "With --lora: the rank r (default 8).")
  Integer rank;

  @Option(names = "--alpha", paramLabel = "A", description = "With --lora: alpha; the update is scaled by alpha / r (default 16).")
  Double alpha;

  @Option(names = "--dropout", paramLabel = "P", description = "With --lora: dropout on the LoRA branch in training (default 0).")
  Double dropout;

  @Option(names = "--layernorm-affine", description = "Make the scale and shift of norms trainable through deltas (default: every norm).")
  boolean layerNormAffine;

  @Option(
      names = "--targets",
      paramLabel = "GLOB",
      arity = "1..*",
      description = "With --lora or --layernorm-affine: module-name globs (e.g. 'layer.*.attention.query'); /regex/ for a regular expression.")
  List<String> targets;

  @Option(
      names = "--layers",
      paramLabel = "A-B",
      description = "With --lora or --layernorm-affine: only layers A to B (inclusive), or one layer N.")
  String layers;

  @Option(
      names = "--head",
      paramLabel = "CLASSES[:POOLING]",
      description = "Add a classification head with CLASSES outputs; POOLING is mean (default), first or max.")
  String head;

  @Option(names = "--dry-run", description = "List what would change; write nothing.")
  boolean dryRun;

  @Option(
      names = "--explain",
      description = "With --dry-run: for each pass, the modules its targets match and why every other candidate"
          + " was refused (wrong kind, name or layer outside the targets, already adapted, a MatMul whose weight"
          + " is not a constant...).")
  boolean explain;

  @Option(names = "--in-place",
      description = "Allow OUT to be IN: replace the input model with the rewritten one (written to a temporary"
          + " file first, then moved over it).")
  boolean inPlace;

  /** Whether {@code a} and {@code b} name one file (b need not exist). */
  static boolean sameFile(Path a, Path b) {
    try {
      if (java.nio.file.Files.exists(b)) return java.nio.file.Files.isSameFile(a, b);
    } catch (java.io.IOException e) {
      // Fall through to comparing the paths.
    }
    return a.toAbsolutePath().normalize().equals(b.toAbsolutePath().normalize());
  }

  @Override
  public Integer call() {
    Recipe r = recipe();
    if (r.needsTraining()) {
      throw new UserError(
          "Recipe " + r.source() + (r.stages().size() > 1
              ? " has " + r.stages().size() + " stages and needs training between them"
              : " picks Taylor channels from training data")
              + ", which graft rewrite cannot do: use graft train --recipe " + recipe + " (or list the"
              + " channels with 'channels:' to rewrite without training).");
    }
    ModelPaths.requireReadableModel(in);
    if (!dryRun) {
      if (out == null) throw new ParameterException(spec.commandLine(), "Missing OUT: where to write the rewritten model (or add --dry-run).");
      ModelPaths.requireWritableTarget(out);
      if (!inPlace && sameFile(in, out)) {
        throw new UserError(
            "OUT " + out + " is the input model " + in + ": writing there would replace it. Give another OUT, or"
                + " --in-place to replace the input on purpose.");
      }
    }
    if (explain && !dryRun) throw usage("--explain goes with --dry-run: add --dry-run.");
    Model model = WorkingModels.load(in);
    PrintWriter stdout = spec.commandLine().getOut();
    // As graft train with a recipe: an int8 model's linears are found (and trained) in float form.
    Int8Dequantization.Report dequantized = Int8Dequantization.apply(model);
    if (dequantized.any()) stdout.println(dequantized.summary());
    if (explain) {
      for (GraphPass p : r.manager().passes()) {
        if (AppliedPass.unwrap(p) instanceof ModulePass<?> mp) {
          mp.explain(model).print(stdout);
        } else {
          stdout.println(p.name() + ": takes no targets (it adapts the model as a whole)");
        }
      }
      stdout.flush();
    }
    if (dryRun) {
      for (PassResult p : r.manager().dryRun(model)) {
        stdout.println(p.summary());
        for (String change : p.changes().elementSet()) {
          int n = p.changes().count(change);
          stdout.println("  " + change + (n > 1 ? " (x" + n + ")" : ""));
        }
        for (String note : p.notes()) stdout.println("  skip " + note);
      }
      stdout.println("Dry run: nothing written.");
      stdout.flush();
      return 0;
    }
    for (PassResult p : r.manager().run(model)) stdout.println(p.summary());
    // A rewrite changes no frozen weight: their data files are hard-linked, not copied.
    List<String> links = ModelIO.saveWithLinkedData(model, out);
    stdout.printf(
        "Wrote %s: %,d trainable parameters in %d initializers.%n",
        out, TrainableRegistry.parameterCount(model), TrainableRegistry.read(model).size());
    if (!links.isEmpty()) {
      stdout.println("Frozen weights: " + String.join(", ", links) + " (hard links to the input's data, no copy).");
    }
    stdout.flush();
    return 0;
  }

  /** The recipe file, or a recipe made of the short flags; usage errors for bad combinations. */
  private Recipe recipe() {
    boolean flags = lora || layerNormAffine || head != null;
    boolean loraOptions = rank != null || alpha != null || dropout != null;
    if (recipe != null && (flags || loraOptions || targets != null || layers != null)) {
      throw usage("--recipe excludes the short flags (--lora, --layernorm-affine, --head and their options); use one or the other.");
    }
    if (recipe != null) {
      try {
        return Recipe.load(recipe);
      } catch (IOException e) {
        throw new UncheckedIOException("Cannot read recipe " + recipe, e);
      }
    }
    if (!flags) {
      throw usage(
          "Say what to insert: --recipe FILE (methods: " + String.join(", ", Methods.FACTORIES.keySet())
              + "), or --lora, --layernorm-affine, --head CLASSES[:POOLING].");
    }
    if (loraOptions && !lora) throw usage("--rank, --alpha and --dropout go with --lora; add it.");
    if ((targets != null || layers != null) && !lora && !layerNormAffine) {
      throw usage("--targets and --layers go with --lora or --layernorm-affine.");
    }
    if (targets != null && lora && layerNormAffine) {
      throw usage("--targets is ambiguous with both --lora and --layernorm-affine (linear vs norm names); write a recipe.");
    }
    List<Map<String, Object>> entries = new ArrayList<>();
    if (lora) {
      Map<String, Object> e = entry("lora");
      if (rank != null) e.put("rank", rank);
      if (alpha != null) e.put("alpha", alpha);
      if (dropout != null) e.put("dropout", dropout);
      entries.add(e);
    }
    if (layerNormAffine) entries.add(entry("layernorm-affine"));
    if (head != null) {
      String[] parts = head.split(":", 2);
      if (!parts[0].matches("\\d+")) throw usage("--head wants CLASSES[:POOLING], e.g. 2 or 3:first; got '" + head + "'.");
      Map<String, Object> e = entry("classification-head");
      e.put("classes", Integer.parseInt(parts[0]));
      if (parts.length == 2) e.put("pooling", parts[1]);
      entries.add(e);
    }
    return Recipe.of(entries, FLAGS_SOURCE);
  }

  private Map<String, Object> entry(String method) {
    Map<String, Object> e = new LinkedHashMap<>();
    e.put(PassFactory.METHOD, method);
    PassFactory f = Methods.FACTORIES.get(method);
    if (f.isTargeted()) {
      if (targets != null) e.put(PassFactory.TARGETS, List.copyOf(targets));
      if (layers != null) e.put(PassFactory.LAYERS, layers.matches("\\d+") ? Integer.parseInt(layers) : layers);
    }
    return e;
  }

  /** Appends every registered method, with its options, to the help's footer. */
  static void listMethodsInHelp(picocli.CommandLine rewrite) {
    List<String> footer = new ArrayList<>(List.of(rewrite.getCommandSpec().usageMessage().footer()));
    footer.add("");
    footer.add("Methods (graft methods shows the same):");
    for (dev.graft.rewrite.method.PeftMethod m : Methods.STANDARD) {
      for (String line : MethodsCommand.describe(m).split("\n")) footer.add("  " + line.replace("%", "%%"));
    }
    rewrite.getCommandSpec().usageMessage().footer(footer.toArray(String[]::new));
  }

  private ParameterException usage(String message) {
    return new ParameterException(spec.commandLine(), message);
  }
}
