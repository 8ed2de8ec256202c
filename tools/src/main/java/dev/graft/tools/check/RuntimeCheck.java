package dev.graft.tools.check;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMap;
import dev.graft.export.ExportVerifier;
import dev.graft.export.OnnxAdapterFile;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.Tensor;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * {@code graft check}: runs a model in other runtimes and compares every output with the
 * reference, the model itself (or the tuned model it was exported from) run by Graft's own ONNX
 * Runtime Java build.
 *
 * <pre>
 *   held-out feeds ─► ORT Java (REFERENCE or MODEL) ─► expected ┐
 *                 ─► runtime 1 (MODEL) ─► outputs, latencies ──┼─► per runtime: loads?, max |diff|, median ms
 *                 ─► runtime 2 (MODEL) ─► refused: stage, op ──┘                  or why not, and the fix
 *
 *   with adapters:  base_with_lora_inputs.onnx + a.onnx_adapter, b.onnx_adapter, one session per runtime
 *                   ORT Java: OrtLoraAdapter + RunOptions.addActiveLoraAdapter
 *                   ORT Node: the FlatBuffer read in JS, its tensors fed as the inputs they name
 *                   each compared with its tuned model (--reference, one per adapter)
 * </pre>
 *
 * The feeds are {@link ExportVerifier#heldOutInputs} of the model (ids within the vocabulary,
 * padded masks), so the numbers are those the export's own verification sees.
 */
public final class RuntimeCheck {
  /** The runtimes {@code --runtime} knows, by name. */
  public static final ImmutableMap<String, java.util.function.Supplier<TargetRuntime>> RUNTIMES =
      ImmutableMap.of(
          "ort-java", OrtJavaRuntime::new,
          "ort-node", OrtNodeRuntime::new,
          "opencv", OpenCvRuntime::new);

  /** One runtime's verdict. {@code refusal} is null when it ran. */
  public record Result(
      String runtime,
      String engine,
      ExportVerifier.Verification verification,
      double medianMs,
      TargetRuntime.Refusal refusal) {

    public boolean loaded() {
      return refusal == null;
    }

    /** Ran and matched the reference within the tolerance. */
    public boolean passed() {
      return refusal == null && verification.passed();
    }

    public Optional<String> hint() {
      return refusal == null ? Optional.empty() : RefusalHints.hint(refusal.op(), refusal.getMessage());
    }

    /** {@code ort-node (onnxruntime-node 1.30.0): max |diff| 2.1e-06 (logits), median 12.3 ms}. */
    public String summary() {
      if (refusal != null) {
        return String.format(
            "%s: does not %s%s: %s%s",
            runtime,
            refusal.stage(),
            refusal.op() == null ? "" : " (op " + refusal.op() + ")",
            firstLine(refusal.getMessage()),
            hint().map(h -> ". Fix: " + h).orElse(". No Graft export option avoids it."));
      }
      return String.format(
          "%s (%s): max |diff| %.3g (%s)%s, median %.2f ms",
          runtime,
          engine,
          verification.maxAbsDiff(),
          verification.worst().name(),
          verification.passed() ? "" : String.format(" OVER the tolerance %.0e", verification.tolerance()),
          medianMs);
    }
  }

  /**
   * The whole check: the reference runs (one, or one per adapter), then one result per runtime
   * asked for (per runtime and adapter, with adapters).
   */
  public record Report(
      ImmutableList<Result> references, ImmutableList<Result> results, ImmutableMap<String, long[]> feedShapes) {
    public boolean allPassed() {
      return results.stream().allMatch(Result::passed);
    }

    /** The first reference run. */
    public Result reference() {
      return references.get(0);
    }
  }

  private RuntimeCheck() {}

  /**
   * Checks {@code model} in each of {@code runtimes} against {@code reference} (or the model
   * itself when null) run by ORT Java.
   */
  public static Report check(
      Path model, Path reference, List<String> runtimes, TargetRuntime.RunSettings settings, double tolerance, long seed) {
    return check(model, reference == null ? List.of() : List.of(reference), List.of(), runtimes, settings, tolerance, seed);
  }

  /**
   * Checks {@code model} with each of {@code adapters} (ONNX Runtime {@code .onnx_adapter} files)
   * active in turn, in one session per runtime, against {@code references.get(k)} for adapter k
   * (the tuned model it was exported from), or, when {@code references} is empty, against MODEL
   * with the adapter activated by ORT Java's adapter API. Without adapters, {@code references}
   * holds at most one model.
   */
  public static Report check(
      Path model,
      List<Path> references,
      List<Path> adapters,
      List<String> runtimes,
      TargetRuntime.RunSettings settings,
      double tolerance,
      long seed) {
    for (String r : runtimes) {
      checkArgument(RUNTIMES.containsKey(r), "Unknown runtime '%s'; graft check knows %s", r, RUNTIMES.keySet());
    }
    checkArgument(
        adapters.isEmpty() ? references.size() <= 1 : references.isEmpty() || references.size() == adapters.size(),
        "Got %s reference model(s) for %s adapter(s): pass one --reference per --adapter (the tuned model each"
            + " adapter was exported from, in the same order), or none to compare with ORT Java's adapter API",
        references.size(),
        adapters.size());
    Model m = ModelIO.load(model);
    Set<String> supplied = new LinkedHashSet<>();
    for (Path a : adapters) supplied.addAll(checkAdapter(m, model, a));
    Map<String, Tensor> feeds = new LinkedHashMap<>(ExportVerifier.heldOutInputs(m, seed));
    feeds.keySet().removeAll(supplied); // plain (non-default) adapter inputs: the adapter feeds them
    OrtJavaRuntime java = new OrtJavaRuntime();
    List<TargetRuntime.Run> expected = new ArrayList<>();
    List<Result> refs = new ArrayList<>();
    int cases = Math.max(1, adapters.size());
    for (int k = 0; k < cases; k++) {
      Path referencePath = references.isEmpty() ? model : references.get(k);
      TargetRuntime.Run run;
      try {
        run = references.isEmpty() && !adapters.isEmpty()
            ? java.runAdapters(model, feeds, List.of(adapters.get(k)), settings).get(0)
            : java.run(referencePath, feeds, settings);
      } catch (TargetRuntime.Refusal e) {
        throw new IllegalArgumentException(
            "ONNX Runtime (Java) cannot " + e.stage() + " the reference " + referencePath + ": " + firstLine(e.getMessage()));
      }
      expected.add(run);
      String label =
          "ort-java (reference"
              + (references.isEmpty() ? "" : ", " + referencePath.getFileName())
              + (references.isEmpty() && !adapters.isEmpty() ? ", MODEL + " + adapters.get(k).getFileName() : "")
              + ")";
      refs.add(new Result(label, run.engine(), ExportVerifier.compare(run.outputs(), run.outputs(), tolerance), median(run.latenciesMs()), null));
    }
    List<Result> results = new ArrayList<>();
    for (String name : runtimes) {
      TargetRuntime rt = RUNTIMES.get(name).get();
      List<String> labels = adapters.isEmpty()
          ? List.of(name)
          : adapters.stream().map(a -> name + " + " + a.getFileName()).toList();
      try {
        List<TargetRuntime.Run> runs =
            adapters.isEmpty() ? List.of(rt.run(model, feeds, settings)) : rt.runAdapters(model, feeds, adapters, settings);
        for (int k = 0; k < runs.size(); k++) {
          TargetRuntime.Run run = runs.get(k);
          try {
            ExportVerifier.Verification v = ExportVerifier.compare(expected.get(k).outputs(), run.outputs(), tolerance);
            results.add(new Result(labels.get(k), run.engine(), v, median(run.latenciesMs()), null));
          } catch (IllegalArgumentException e) {
            results.add(refused(labels.get(k), new TargetRuntime.Refusal(
                "run", null, "it ran, but its outputs do not match the reference's: " + e.getMessage())));
          }
        }
      } catch (TargetRuntime.Refusal e) {
        for (String label : labels) results.add(refused(label, e));
      }
    }
    ImmutableMap.Builder<String, long[]> shapes = ImmutableMap.builder();
    feeds.forEach((k, v) -> shapes.put(k, v.dims()));
    return new Report(ImmutableList.copyOf(refs), ImmutableList.copyOf(results), shapes.build());
  }

  private static Result refused(String label, TargetRuntime.Refusal e) {
    return new Result(label, label, null, Double.NaN, e);
  }

  /**
   * The names {@code adapter}'s parameters feed, after checking that each is an input of {@code
   * model} of its element type and shape (as ORT's adapter API requires).
   */
  private static Set<String> checkAdapter(Model m, Path model, Path adapter) {
    Map<String, Tensor> params = OnnxAdapterFile.read(adapter);
    Map<String, Value> inputs = new LinkedHashMap<>();
    for (Value v : m.graph().inputs()) inputs.put(v.name(), v);
    for (Map.Entry<String, Tensor> e : params.entrySet()) {
      Value in = inputs.get(e.getKey());
      checkArgument(
          in != null,
          "Adapter %s feeds '%s', which is no input of %s. Pass the base_with_lora_inputs.onnx written beside the"
              + " adapter by graft export --adapter-only (from the same base model and recipe).",
          adapter,
          e.getKey(),
          model);
      Tensor t = e.getValue();
      checkArgument(
          in.dataType().map(d -> d == t.dataType()).orElse(true),
          "Adapter %s holds '%s' as %s, but %s's input of that name is %s",
          adapter,
          e.getKey(),
          t.dataType(),
          model,
          in.dataType().orElse(null));
      in.shape().ifPresent(shape -> {
        boolean fits = shape.rank() == t.dims().length;
        for (int i = 0; fits && i < shape.rank(); i++) {
          fits = !shape.dim(i).isFixed() || shape.dim(i).value() == t.dims()[i];
        }
        checkArgument(
            fits,
            "Adapter %s holds '%s' with shape %s, but %s's input of that name has shape %s: the adapter was"
                + " exported with another rank or recipe than this model",
            adapter,
            e.getKey(),
            t.shape(),
            model,
            shape);
      });
    }
    return params.keySet();
  }

  public static double median(List<Double> ms) {
    checkArgument(!ms.isEmpty(), "no timed runs");
    double[] s = ms.stream().mapToDouble(Double::doubleValue).sorted().toArray();
    int n = s.length;
    return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  }

  private static String firstLine(String s) {
    if (s == null) return "";
    String t = s.strip();
    // OpenCV's messages quote its source paths and function signatures; keep the node and reason.
    t = t.replaceAll("OpenCV\\([^)]*\\) \\S+: error: \\([^)]*\\) in function '[^']*'", "");
    t = t.replace("cv::Exception: ", "").replaceAll("\\s*>\\s*", " ");
    t = t.replaceAll("\\s*\\R\\s*", " ").strip();
    return t.length() > 400 ? t.substring(0, 400) + "..." : t;
  }
}
