package dev.graft.export;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMap;
import dev.graft.ir.Constants;
import dev.graft.ir.DataType;
import dev.graft.ir.Dim;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Shape;
import dev.graft.ir.Use;
import dev.graft.ir.Value;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.SplittableRandom;
import java.util.stream.Collectors;

/**
 * Checks an export against the tuned graph it came from: both run on ONNX Runtime on the same
 * held-out inputs and every output of the tuned graph must match within a tolerance. Exports are
 * written only after this passes.
 *
 * <h2>Held-out inputs</h2>
 *
 * {@link #heldOutInputs} makes them from the model's input types, with a fixed seed, batch
 * {@value #BATCH}, 0 for a past-sequence dimension (a decoder's empty KV cache) and {@value #SEQUENCE}
 * for every other symbolic dimension:
 *
 * <ul>
 *   <li>an integer input that a Gather reads as indices (directly or through a Cast) gets ids
 *       drawn uniformly from that table's rows, so token ids stay within the vocabulary and
 *       token types within their 2 rows;
 *   <li>an integer input whose name contains "mask" gets ones, with the last quarter of every
 *       second row set to 0 (padding);
 *   <li>other integer inputs with "ids" in the name get ids below the row count of the graph's
 *       first Gather table, the rest zeros;
 *   <li>float inputs get uniform values in [-1, 1].
 * </ul>
 *
 * Callers with better data pass their own feeds.
 *
 * <h2>Tolerances</h2>
 *
 * {@value #FP32_TOLERANCE} for fp32 exports (folding reassociates float sums, so the two graphs
 * differ by rounding). For fp16 storage ({@link Fp16Storage}) every weight is rounded to 11
 * significant bits (relative error up to 2^-11 ≈ 4.9e-4); through MiniLM's six layers that gives
 * differences around 1e-3 on hidden states of magnitude ~1, so the documented tolerance is
 * {@value #FP16_TOLERANCE}.
 */
public final class ExportVerifier {
  public static final double FP32_TOLERANCE = 1e-4;
  public static final double FP16_TOLERANCE = 2e-2;
  public static final long BATCH = 2;
  public static final long SEQUENCE = 16;

  /** The largest absolute difference of one output. */
  public record OutputDiff(String name, double maxAbsDiff) {}

  /** The comparison of every output. */
  public record Verification(ImmutableList<OutputDiff> outputs, double tolerance) {
    /** The output with the largest difference. */
    public OutputDiff worst() {
      return outputs.stream()
          .max((a, b) -> Double.compare(nanHigh(a.maxAbsDiff()), nanHigh(b.maxAbsDiff())))
          .orElseThrow();
    }

    public double maxAbsDiff() {
      return worst().maxAbsDiff();
    }

    public boolean passed() {
      return outputs.stream().allMatch(o -> o.maxAbsDiff() <= tolerance);
    }

    /** {@code max |export - tuned| = 3.1e-06 over 2 outputs (tolerance 1e-4)}. */
    public String summary() {
      return String.format(
          "max |export - tuned| = %.3g (%s) over %d output%s (tolerance %.0e)",
          maxAbsDiff(), worst().name(), outputs.size(), outputs.size() == 1 ? "" : "s", tolerance);
    }

    private static double nanHigh(double d) {
      return Double.isNaN(d) ? Double.POSITIVE_INFINITY : d;
    }
  }

  /** Thrown when an export does not reproduce the tuned graph; nothing has been written. */
  public static class VerificationFailedException extends RuntimeException {
    private final Verification verification;

    /** A failure that says itself what differs (a merged weight's probe, see {@code FoldProbe}). */
    protected VerificationFailedException(String message, Verification v) {
      super(message);
      this.verification = v;
    }

    public VerificationFailedException(Verification v) {
      super(
          String.format(
              "Export verification failed: output '%s' differs from the tuned graph by %.6g, more"
                  + " than the tolerance %.0e (all outputs: %s). Nothing was written. The folded"
                  + " graph does not compute what the tuned one does: check that the tuned model"
                  + " was not edited by hand after its passes ran, or export with --adapter-only.",
              v.worst().name(),
              v.worst().maxAbsDiff(),
              v.tolerance(),
              v.outputs().stream()
                  .map(o -> o.name() + "=" + String.format("%.3g", o.maxAbsDiff()))
                  .collect(Collectors.joining(", "))));
      this.verification = v;
    }

    public Verification verification() {
      return verification;
    }
  }

  private ExportVerifier() {}

  /** Compares, and throws {@link VerificationFailedException} when an output is off. */
  public static Verification verify(
      Model tuned, Model export, Map<String, Tensor> feeds, double tolerance) {
    Verification v = compare(tuned, export, feeds, tolerance);
    if (!v.passed()) throw new VerificationFailedException(v);
    return v;
  }

  /** As {@link #verify(Model, Model, Map, double)}, on outputs already computed. */
  public static Verification verify(Map<String, Tensor> expected, Map<String, Tensor> actual, double tolerance) {
    Verification v = compare(expected, actual, tolerance);
    if (!v.passed()) throw new VerificationFailedException(v);
    return v;
  }

  /** Runs both models on {@code feeds} and compares every output of {@code tuned}. */
  public static Verification compare(
      Model tuned, Model export, Map<String, Tensor> feeds, double tolerance) {
    checkArgument(tolerance >= 0, "The tolerance must be 0 or more, got %s", tolerance);
    ImmutableMap<String, Tensor> expected = OrtEval.run(tuned, feeds, "the tuned model");
    ImmutableMap<String, Tensor> actual = OrtEval.run(export, feeds, "the export");
    return compare(expected, actual, tolerance);
  }

  /** Compares outputs already computed: every output in {@code expected} against {@code actual}. */
  public static Verification compare(
      Map<String, Tensor> expected, Map<String, Tensor> actual, double tolerance) {
    ImmutableList.Builder<OutputDiff> out = ImmutableList.builder();
    for (Map.Entry<String, Tensor> e : expected.entrySet()) {
      Tensor got = actual.get(e.getKey());
      checkArgument(
          got != null,
          "The export lacks output '%s' of the tuned model; its outputs are %s",
          e.getKey(),
          actual.keySet());
      out.add(new OutputDiff(e.getKey(), maxAbsDiff(e.getKey(), e.getValue(), got)));
    }
    return new Verification(out.build(), tolerance);
  }

  private static double maxAbsDiff(String name, Tensor a, Tensor b) {
    checkArgument(
        java.util.Arrays.equals(a.dims(), b.dims()),
        "Output '%s' has shape %s in the tuned model but %s in the export",
        name,
        a.shape(),
        b.shape());
    double[] x = a.toDoubleArray();
    double[] y = b.toDoubleArray();
    double m = 0;
    for (int i = 0; i < x.length; i++) {
      double d = Math.abs(x[i] - y[i]);
      if (Double.isNaN(d) && !(Double.isNaN(x[i]) && Double.isNaN(y[i]))) return Double.NaN;
      if (d > m) m = d;
    }
    return m;
  }

  /** Held-out inputs for {@code model}, made from its input types as the class comment says. */
  public static ImmutableMap<String, Tensor> heldOutInputs(Model model, long seed) {
    return heldOutInputs(model, seed, BATCH, SEQUENCE);
  }

  /**
   * The inputs an export is verified on: {@link #heldOutInputs(Model, long)}, but for a model
   * with {@link #LARGE_EXTERNAL_BYTES} or more of external data batch 1 and {@value
   * #LARGE_SEQUENCE} tokens (where the sequence is symbolic). A model that large costs about
   * 2·parameters·tokens of arithmetic a run, which at 32 tokens would take longer than writing
   * the export; every weight is still read and every output compared.
   */
  public static ImmutableMap<String, Tensor> verificationInputs(Model model, long seed) {
    return OrtEval.externalBytes(model) >= LARGE_EXTERNAL_BYTES
        ? heldOutInputs(model, seed, 1, LARGE_SEQUENCE)
        : heldOutInputs(model, seed);
  }

  /** External data from which {@link #verificationInputs} are small: 256 MiB. */
  public static final long LARGE_EXTERNAL_BYTES = 256L << 20;

  public static final long LARGE_SEQUENCE = 4;

  /** As {@link #heldOutInputs(Model, long)}, with the given batch and sequence length. */
  public static ImmutableMap<String, Tensor> heldOutInputs(Model model, long seed, long batch, long sequence) {
    checkArgument(batch > 0 && sequence > 0, "batch and sequence must be positive, got %s and %s", batch, sequence);
    Graph g = model.graph();
    SplittableRandom random = new SplittableRandom(seed);
    Map<String, Tensor> feeds = new LinkedHashMap<>();
    long firstTableRows = firstGatherRows(g).orElse(1L);
    for (Value in : g.inputs()) {
      if (in.isInitializer()) continue; // overridable initializers keep their values
      DataType type = in.dataType().orElseThrow(
          () -> new IllegalArgumentException("Input '" + in.name() + "' has no element type; pass feeds"));
      long[] dims = sizes(in, batch, sequence);
      int n = Math.toIntExact(java.util.Arrays.stream(dims).reduce(1L, Math::multiplyExact));
      String lower = in.name().toLowerCase();
      if (type == DataType.INT64 || type == DataType.INT32) {
        long[] v = new long[n];
        Optional<Long> rows = gatherRows(in);
        if (rows.isPresent() || lower.contains("ids")) {
          long bound = rows.orElse(firstTableRows);
          for (int i = 0; i < n; i++) v[i] = random.nextLong(bound);
        } else if (lower.contains("mask")) {
          long cols = dims.length == 0 ? 1 : dims[dims.length - 1];
          for (int i = 0; i < n; i++) {
            long row = i / cols;
            long col = i % cols;
            v[i] = row % 2 == 1 && col >= cols - cols / 4 ? 0 : 1;
          }
        }
        feeds.put(in.name(), type == DataType.INT64 ? DenseTensor.ofLongs(in.name(), dims, v) : ints(in.name(), dims, v));
      } else if (type == DataType.FLOAT) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) random.nextDouble(-1, 1);
        feeds.put(in.name(), DenseTensor.ofFloats(in.name(), dims, v));
      } else {
        throw new IllegalArgumentException(
            "Cannot make held-out data for input '" + in.name() + "' of type " + type
                + "; pass feeds (int64, int32 and float inputs are generated)");
      }
    }
    return ImmutableMap.copyOf(feeds);
  }

  private static DenseTensor ints(String name, long[] dims, long[] v) {
    int[] i = new int[v.length];
    for (int k = 0; k < v.length; k++) i[k] = Math.toIntExact(v[k]);
    return DenseTensor.ofInts(name, dims, i);
  }

  private static long[] sizes(Value in, long batch, long sequence) {
    Shape s = in.shape().orElseThrow(
        () -> new IllegalArgumentException("Input '" + in.name() + "' has no shape; pass feeds"));
    long[] out = new long[s.rank()];
    for (int i = 0; i < out.length; i++) {
      Dim d = s.dim(i);
      // A decoder's KV cache ("past_sequence_length") starts empty; its mask then spans the sequence.
      boolean past = !d.isFixed() && d.toString().contains("past") && !d.toString().contains("+");
      out[i] = d.isFixed() ? d.value() : i == 0 ? batch : past ? 0 : sequence;
    }
    return out;
  }

  /** The rows of the table a Gather reads {@code in} from (as indices, maybe through a Cast). */
  private static Optional<Long> gatherRows(Value in) {
    for (Use u : in.uses()) {
      Node n = u.node();
      if (n.is("Cast")) {
        Optional<Long> r = gatherRows(n.output());
        if (r.isPresent()) return r;
      }
      if (n.is("Gather") && u.index() == 1 && n.attrLong("axis", 0) == 0) {
        Optional<Tensor> table = Constants.valueOf(n.input(0));
        if (table.isPresent() && table.get().dims().length > 0) return Optional.of(table.get().dims()[0]);
      }
    }
    return Optional.empty();
  }

  private static Optional<Long> firstGatherRows(Graph g) {
    for (Node n : g.nodes()) {
      if (!n.is("Gather")) continue;
      Optional<Tensor> table = Constants.valueOf(n.input(0));
      if (table.isPresent() && table.get().dims().length > 0) return Optional.of(table.get().dims()[0]);
    }
    return Optional.empty();
  }
}
