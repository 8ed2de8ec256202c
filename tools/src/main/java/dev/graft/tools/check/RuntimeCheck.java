package dev.graft.tools.check;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMap;
import dev.graft.export.ExportVerifier;
import dev.graft.ir.Model;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.Tensor;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * {@code graft check}: runs a model in other runtimes and compares every output with the
 * reference, the model itself (or the tuned model it was exported from) run by Graft's own ONNX
 * Runtime Java build.
 *
 * <pre>
 *   held-out feeds ─► ORT Java (REFERENCE or MODEL) ─► expected ┐
 *                 ─► runtime 1 (MODEL) ─► outputs, latencies ──┼─► per runtime: loads?, max |diff|, median ms
 *                 ─► runtime 2 (MODEL) ─► refused: stage, op ──┘                  or why not, and the fix
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

  /** The whole check: the reference's own run, then one result per runtime asked for. */
  public record Report(Result reference, ImmutableList<Result> results, ImmutableMap<String, long[]> feedShapes) {
    public boolean allPassed() {
      return results.stream().allMatch(Result::passed);
    }
  }

  private RuntimeCheck() {}

  /**
   * Checks {@code model} in each of {@code runtimes} against {@code reference} (or the model
   * itself when null) run by ORT Java.
   */
  public static Report check(
      Path model, Path reference, List<String> runtimes, TargetRuntime.RunSettings settings, double tolerance, long seed) {
    return check(model, reference, Map.of(), runtimes, settings, tolerance, seed);
  }

  /**
   * As {@link #check(Path, Path, List, TargetRuntime.RunSettings, double, long)}, feeding {@code
   * extraFeeds} to MODEL only (not to the reference): an adapter's parameters for the graph inputs
   * of the same names, as ORT's LoRA adapter API would feed them (the {@code --adapter} option).
   */
  public static Report check(
      Path model,
      Path reference,
      Map<String, Tensor> extraFeeds,
      List<String> runtimes,
      TargetRuntime.RunSettings settings,
      double tolerance,
      long seed) {
    for (String r : runtimes) {
      checkArgument(RUNTIMES.containsKey(r), "Unknown runtime '%s'; graft check knows %s", r, RUNTIMES.keySet());
    }
    Model m = ModelIO.load(model);
    Map<String, Tensor> feeds = ExportVerifier.heldOutInputs(m, seed);
    Map<String, Tensor> modelFeeds = new java.util.LinkedHashMap<>(feeds);
    for (Map.Entry<String, Tensor> e : extraFeeds.entrySet()) {
      checkArgument(
          m.graph().inputs().stream().anyMatch(v -> v.name().equals(e.getKey())),
          "The adapter's tensor '%s' is no input of %s; pass the base_with_lora_inputs.onnx the adapter was exported with",
          e.getKey(),
          model);
      modelFeeds.put(e.getKey(), e.getValue());
    }
    OrtJavaRuntime java = new OrtJavaRuntime();
    TargetRuntime.Run expected;
    Path referencePath = reference == null ? model : reference;
    try {
      expected = java.run(referencePath, feeds, settings);
    } catch (TargetRuntime.Refusal e) {
      throw new IllegalArgumentException(
          "ONNX Runtime (Java) cannot " + e.stage() + " the reference " + referencePath + ": " + firstLine(e.getMessage()));
    }
    Result ref =
        new Result(
            "ort-java (reference" + (reference == null ? "" : ", " + reference.getFileName()) + ")",
            expected.engine(),
            ExportVerifier.compare(expected.outputs(), expected.outputs(), tolerance),
            median(expected.latenciesMs()),
            null);
    List<Result> results = new ArrayList<>();
    for (String name : runtimes) {
      TargetRuntime rt = RUNTIMES.get(name).get();
      try {
        TargetRuntime.Run run = rt.run(model, modelFeeds, settings);
        ExportVerifier.Verification v;
        try {
          v = ExportVerifier.compare(expected.outputs(), run.outputs(), tolerance);
        } catch (IllegalArgumentException e) {
          throw new TargetRuntime.Refusal("run", null, "it ran, but its outputs do not match the reference's: " + e.getMessage());
        }
        results.add(new Result(name, run.engine(), v, median(run.latenciesMs()), null));
      } catch (TargetRuntime.Refusal e) {
        results.add(new Result(name, name, null, Double.NaN, e));
      }
    }
    ImmutableMap.Builder<String, long[]> shapes = ImmutableMap.builder();
    feeds.forEach((k, v) -> shapes.put(k, v.dims()));
    return new Report(ref, ImmutableList.copyOf(results), shapes.build());
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
