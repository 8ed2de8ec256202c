package dev.graft.tools.cli;

import dev.graft.rewrite.method.Fold;
import dev.graft.rewrite.method.Methods;
import dev.graft.rewrite.method.PeftMethod;
import dev.graft.rewrite.recipe.PassFactory;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code graft methods}: the PEFT methods a recipe may name, read from the one registry
 * ({@link Methods}): what each does, its default targets, its options and how a merged export
 * treats it.
 */
@Command(
    name = "methods",
    mixinStandardHelpOptions = true,
    versionProvider = GraftVersion.class,
    description = {
      "List the PEFT methods a recipe's 'method:' may name, with their options, default targets"
          + " and what a merged export does with them (folds into the weights, or keeps them as nodes)."
    },
    footerHeading = "%nExamples:%n",
    footer = {"  graft methods", "  graft methods dora", "  graft methods --json"})
final class MethodsCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Parameters(arity = "0..1", paramLabel = "METHOD", description = "Show only this method.")
  String only;

  @Option(names = "--json", description = "Print one JSON object: method name to its description.")
  boolean json;

  @Override
  public Integer call() {
    List<PeftMethod> methods = new ArrayList<>(Methods.STANDARD);
    if (only != null) {
      if (Methods.find(only).isEmpty()) {
        throw new UserError("No method '" + only + "'; the methods are " + Methods.FACTORIES.keySet() + ".");
      }
      methods = List.of(Methods.get(only));
    }
    PrintWriter out = spec.commandLine().getOut();
    if (json) {
      Map<String, Object> all = new LinkedHashMap<>();
      for (PeftMethod m : methods) {
        Map<String, Object> o = new LinkedHashMap<>();
        o.put("description", m.description());
        o.put("targets", m.factory().defaultTargets().orElse(null));
        o.put("options", List.copyOf(m.factory().keys()));
        o.put("export", export(m.fold()));
        o.put("peft", m.peft().map(p -> p.peftType()).orElse(null));
        all.put(m.name(), o);
      }
      out.println(Json.write(all));
    } else {
      for (PeftMethod m : methods) out.print(describe(m));
    }
    out.flush();
    return 0;
  }

  /** The text block for one method, as {@code graft methods} and {@code graft rewrite --help} print it. */
  static String describe(PeftMethod m) {
    StringBuilder b = new StringBuilder();
    PassFactory f = m.factory();
    b.append(m.name()).append(": ").append(m.description()).append('\n');
    f.defaultTargets().ifPresent(t -> b.append("    default targets: ").append(t).append('\n'));
    List<String> options = new ArrayList<>(f.keys());
    options.remove(PassFactory.METHOD);
    b.append("    options: ").append(options.isEmpty() ? "(none)" : String.join(", ", options)).append('\n');
    b.append("    export: ").append(export(m.fold())).append('\n');
    return b.toString();
  }

  private static String export(Fold f) {
    if (f instanceof Fold.Kept k) return "kept as nodes (" + k.why() + ")";
    if (f instanceof Fold.InPlace) return "trained in place; the merged export is the model itself";
    return "folds into the weights";
  }
}
