package dev.graft.tools.cli;

import dev.graft.ir.Model;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.ir.io.ModelIO;
import dev.graft.rewrite.method.AppliedMethods;
import dev.graft.trainer.train.Int8Dequantization;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code graft inspect}: what a model is made of. */
@Command(
    name = "inspect",
    mixinStandardHelpOptions = true,
    versionProvider = GraftVersion.class,
    description = {
      "Summarise an ONNX model: IR version, producer, opsets, inputs and outputs with shapes,"
          + " parameter counts by type, the op census and external data files.",
      "Parameters are the elements of the initializers; tensors held by Constant nodes are"
          + " counted separately.",
      "Also lists the modules Graft discovers (linear layers, attention and feed-forward blocks,"
          + " norms, embeddings, residual adds) by the names recipes target (for an int8 model, those"
          + " of its float form, which rewrite and train dequantise it to), and, for a rewritten"
          + " model, its trainable parameters."
    },
    footerHeading = "%nExamples:%n",
    footer = {
      "  graft inspect                        the embedded all-MiniLM-L6-v2",
      "  graft inspect model.onnx",
      "  graft inspect model.onnx --json | jq .opCensus",
      "",
      "JSON keys: model, irVersion, producer, opsets (domain -> version; the empty domain"
          + " is the default ONNX one),"
          + " inputs and outputs ([{name, type, shape}], a dim is a number, a name or null),"
          + " nodeCount, opCensus (op -> count; \"domain:op\" outside the default domain), initializerCount, parameterCount,"
          + " parametersByType, constantNodeCount, constantCount, constantsByType,"
          + " externalData ([{location, tensors, bytes}]),"
          + " modules ([{name, kind, layer, shapes, nodes}]: shapes maps a parameter's role to its dims,"
          + " nodes lists the node names the module covers), modulesNote (only for an int8 model: its"
          + " modules are those of the float form recipes see), trainableParameters (0 until rewritten),"
          + " trainableByMethod (method -> parameters), appliedMethods (method, options as given and"
          + " modules of each rewrite recorded in the model)."
    })
final class InspectCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Parameters(
      index = "0",
      arity = "0..1",
      paramLabel = "MODEL",
      description = "The .onnx file; external data is read from its folder. Default: the embedded"
          + " all-MiniLM-L6-v2.")
  Path model;

  @Option(names = "--json", description = "Print one JSON object instead of text.")
  boolean json;

  @Override
  public Integer call() {
    String label;
    Path path;
    if (model == null) {
      label = DefaultModel.NAME;
      path = DefaultModel.path();
    } else {
      label = model.toString();
      path = ModelPaths.requireReadableModel(model);
    }
    Model loaded = ModelIO.load(path);
    ModelSummary summary = ModelSummary.of(label, loaded);
    List<AppliedMethods.Applied> applied = AppliedMethods.read(loaded);
    summary = withFloatFormModules(summary, loaded);
    PrintWriter out = spec.commandLine().getOut();
    if (json) {
      Map<String, Object> o = new LinkedHashMap<>(summary.toJson());
      List<Object> rows = new ArrayList<>();
      for (AppliedMethods.Applied a : applied) {
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("method", a.method());
        r.put("options", a.options());
        r.put("modules", a.modules());
        rows.add(r);
      }
      o.put("appliedMethods", rows);
      out.println(Json.write(o));
    } else {
      printText(summary, out);
      for (AppliedMethods.Applied a : applied) {
        row(out, a == applied.get(0) ? "applied" : "", a.method() + " " + a.options() + " on " + a.modules().size() + " modules");
      }
    }
    out.flush();
    return 0;
  }

  /**
   * An int8 model (ONNX Runtime's dynamic quantisation) shows no linear layers as the file stands,
   * yet graft rewrite and train find them: they bring the model to the working opset and dequantise
   * it before a recipe. Its modules are listed as a recipe sees them, found the same way, after the
   * file's own figures were taken ({@code loaded} is changed in place: it is not used after this).
   */
  private static ModelSummary withFloatFormModules(ModelSummary summary, Model loaded) {
    if (loaded.graph().nodes().stream().noneMatch(n -> n.is("MatMulInteger") || n.is("DequantizeLinear"))) {
      return summary;
    }
    Int8Dequantization.Report r;
    try {
      WorkingModels.of(loaded);
      r = Int8Dequantization.apply(loaded);
    } catch (RuntimeException e) {
      // The file is still described as it stands; rewrite and train would stop with this error.
      return summary.withModules(summary.modules(), "as the file stands: its int8 linears could not be dequantised ("
          + e.getMessage() + "), so graft rewrite and train would stop there");
    }
    if (!r.any()) return summary;
    return summary.withModules(ModelSummary.modules(loaded), String.format(
        "as recipes see them: graft rewrite and train dequantise this int8 model's %d MatMulInteger linear%s and %d"
            + " embedding Gather%s to float32 before a recipe", r.matMuls(), r.matMuls() == 1 ? "" : "s", r.gathers(),
        r.gathers() == 1 ? "" : "s"));
  }

  private static void printText(ModelSummary s, PrintWriter out) {
    row(out, "model", s.model());
    row(out, "ir version", s.irVersion() == null ? "(absent)" : s.irVersion().toString());
    row(out, "producer", s.producer() == null ? "(absent)" : s.producer());
    row(
        out,
        "opsets",
        s.opsets().entrySet().stream()
            .map(e -> (e.getKey().isEmpty() ? "ai.onnx" : e.getKey()) + " " + e.getValue())
            .collect(Collectors.joining(", ")));
    ports(out, "inputs", s.inputs());
    ports(out, "outputs", s.outputs());
    row(
        out,
        "parameters",
        String.format(
            "%,d in %d initializers%s",
            s.parameterCount(), s.initializerCount(), byType(s.parametersByType())));
    row(
        out,
        "constants",
        String.format(
            "%,d elements in %d Constant nodes%s",
            s.constantCount(), s.constantNodeCount(), byType(s.constantsByType())));
    row(
        out,
        "trainable",
        s.trainableByMethod().isEmpty()
            ? "none (not rewritten)"
            : String.format("%,d parameters%s", s.trainableParameters(), byType(s.trainableByMethod())));
    row(out, "nodes", Integer.toString(s.nodeCount()));
    if (s.externalData().isEmpty()) {
      row(out, "external data", "none");
    } else {
      boolean first = true;
      for (ModelSummary.ExternalFile f : s.externalData()) {
        row(
            out,
            first ? "external data" : "",
            String.format("%s  %,d bytes in %d tensors", f.location(), f.bytes(), f.tensors()));
        first = false;
      }
    }
    out.println("op census");
    int width = s.opCensus().keySet().stream().mapToInt(String::length).max().orElse(0);
    for (Map.Entry<String, Integer> e : s.opCensus().entrySet()) {
      out.printf("  %-" + width + "s %6d%n", e.getKey(), e.getValue());
    }
    modules(s.modules(), s.modulesNote(), out);
  }

  /** The discovered modules as a table: name, kind, layer, parameter shapes, node count. */
  private static void modules(List<ModelSummary.ModuleRow> modules, String note, PrintWriter out) {
    out.println("modules" + (modules.isEmpty() ? "        none found" : " (" + modules.size() + ")")
        + (note == null ? "" : ", " + note));
    if (modules.isEmpty()) return;
    int nameWidth = Math.max(4, modules.stream().mapToInt(m -> m.name().length()).max().orElse(0));
    int kindWidth = Math.max(4, modules.stream().mapToInt(m -> m.kind().length()).max().orElse(0));
    String format = "  %-" + nameWidth + "s  %-" + kindWidth + "s  %5s  %5s  %s%n";
    out.printf(format, "name", "kind", "layer", "nodes", "shapes");
    for (ModelSummary.ModuleRow m : modules) {
      String shapes =
          m.shapes().entrySet().stream()
              .map(e -> e.getKey() + " " + e.getValue().stream().map(String::valueOf).collect(Collectors.joining("x", "[", "]")))
              .collect(Collectors.joining(", "));
      if (shapes.isEmpty()) shapes = "-";
      out.printf(
          format, m.name(), m.kind(), m.layer() == null ? "-" : m.layer().toString(), m.nodes().size(), shapes);
    }
  }

  private static String byType(Map<String, Long> byType) {
    if (byType.isEmpty()) return "";
    return byType.entrySet().stream()
        .map(e -> String.format("%s %,d", e.getKey(), e.getValue()))
        .collect(Collectors.joining(", ", " (", ")"));
  }

  private static void ports(PrintWriter out, String label, List<ModelSummary.Port> ports) {
    if (ports.isEmpty()) {
      row(out, label, "none");
      return;
    }
    int width = ports.stream().mapToInt(p -> p.name().length()).max().orElse(0);
    boolean first = true;
    for (ModelSummary.Port p : ports) {
      String shape =
          p.shape() == null
              ? "[*]"
              : p.shape().stream()
                  .map(d -> d == null ? "?" : d.toString())
                  .collect(Collectors.joining(",", "[", "]"));
      String type = p.type() == null ? "?" : p.type();
      row(out, first ? label : "", String.format("%-" + width + "s  %s%s", p.name(), type, shape));
      first = false;
    }
  }

  private static void row(PrintWriter out, String label, String value) {
    out.printf("%-14s %s%n", label, value);
  }
}
