package dev.graft.export;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * The per-weight check of a merged export: each merged weight W' of the linear-branch fold is
 * checked against the tuned model's own computation on fixed random rows P ({@value #ROWS} rows
 * of the linear's input) and columns Q ({@value #ROWS} columns of its output), by ORT, a
 * two-sided Freivalds check:
 *
 * <pre>
 *   diff  = max |lin(P, W')·Q - (lin(P, W) + branch(P))·Q|     lin: the linear (MatMul, or Gemm
 *   scale = max |(lin(P, W) + branch(P))·Q|                           with its alpha and transB)
 *   passes when diff <= tolerance · max(1, scale)
 * </pre>
 *
 * The branch runs as the tuned graph runs it, node for node on P (LoRA: {@code ((P·A)·B)·s}),
 * not as the fold computed W' ({@code A·(B·s)} added to W), so a wrong fold (a wrong scale, a
 * transposition, a branch that is not linear in x) shows as a difference: any error E in W' adds
 * {@code P·E·Q}, non-zero for Gaussian P and Q whenever E is. The weights are multiplied on the
 * right first ({@code lin(P, W'·Q)}): one streaming pass over each of W and W', where {@code
 * P·W'} would first repack all of W' for the kernel. In a streaming export ({@link #append}) the
 * probe is part of the fold's own ORT run and reads W' in the buffer ORT wrote, the bytes the
 * export then writes to its file; otherwise ({@link #check}) it reads W' as the store returned
 * it. Either costs far less than writing W', against two whole-model sessions for {@link
 * ExportVerifier}'s check. It checks weights, not the graph around them (which the IR {@code
 * Verifier} checks); folds of other kinds (constant clusters, conv branches) are not probed, and
 * {@link MergedExport} runs the full check where they occur.
 *
 * <p>Like the fold graph, the probe graph takes its constants as inputs and names its values by
 * position, so one ORT session ({@link FoldSessions}) serves every weight of one shape and form.
 */
final class FoldProbe {
  /** Rows of P and columns of Q: each probe sums {@value} by {@value} random mixes of W'. */
  static final int ROWS = 4;

  /** One probed weight: the module and its two maxima. */
  record WeightCheck(String module, double maxAbsDiff, double scale) {
    double normalized() {
      return maxAbsDiff / Math.max(1, scale);
    }
  }

  private final double tolerance;
  private final long seed;
  private final Map<Long, DenseTensor> probes = new LinkedHashMap<>();
  private final Map<Long, DenseTensor> columns = new LinkedHashMap<>();
  private final List<WeightCheck> weights = new ArrayList<>();

  FoldProbe(double tolerance, long seed) {
    checkArgument(tolerance >= 0, "The probe tolerance must be 0 or more, got %s", tolerance);
    this.tolerance = tolerance;
    this.seed = seed;
  }

  /**
   * Checks {@code stored}, the merged weight of {@code linear} whose branch is {@code ordered}
   * (ending in {@code sink}, reading {@code x}), in a graph of its own; throws {@link
   * ProbeFailedException} at once when it is off, so a long export stops at the first wrong weight.
   * (A weight ORT writes into the export's file is probed in its fold's own run instead: {@link
   * #append}.)
   */
  void check(
      String module,
      Model owner,
      List<Node> ordered,
      Node sink,
      Value x,
      Node linear,
      Tensor w,
      Tensor stored,
      long in,
      FoldSessions sessions) {
    GraphBuilder gb = GraphBuilder.create("fold_probe");
    Map<String, Tensor> feeds = new LinkedHashMap<>();
    feeds.put("W", w);
    feeds.put("M", stored);
    Value wv = gb.input("W", w.dataType(), (Object[]) DeltaFolding.boxed(w.dims()));
    Value mv = gb.input("M", stored.dataType(), (Object[]) DeltaFolding.boxed(stored.dims()));
    long out = w.dims()[linear.is("Gemm") && linear.attrLong("transB", 0) == 1 ? 0 : 1];
    append(gb, Map.of(), feeds, ordered, sink, x, linear, wv, mv, in, out);
    Model m = gb.model(owner.defaultOpset().orElse(17));
    owner.opsets().forEach(m::setOpset);
    if (owner.irVersion() > 0) m.setIrVersion(owner.irVersion());
    record(module, sessions.run(m, feeds, "the probe of a merged weight"));
  }

  /**
   * Adds the probe of merged weight {@code merged} (the value W' of {@code gb}'s graph; in a fold
   * graph, the output ORT writes into the export's data file, so the probe reads the bytes as
   * stored) against frozen weight {@code w}: input {@code P}, outputs {@link #DIFF} and {@link
   * #SCALE}. {@code constants} maps branch constants the graph already takes as inputs (the fold's
   * A, B, s), so the probe shares them; others become inputs in {@code feeds}. Hand the run's
   * outputs to {@link #record}.
   */
  void append(
      GraphBuilder gb,
      Map<Value, Value> constants,
      Map<String, Tensor> feeds,
      List<Node> ordered,
      Node sink,
      Value x,
      Node linear,
      Value w,
      Value merged,
      long in,
      long out) {
    feeds.put("P", probes.computeIfAbsent(in, this::probe));
    Value pv = gb.input("P", DataType.FLOAT, (long) ROWS, in);
    Map<Value, Value> map = new IdentityHashMap<>();
    map.put(x, pv);
    for (int i = 0; i < ordered.size(); i++) {
      Node n = ordered.get(i);
      List<Value> ins = new ArrayList<>();
      for (Value v : n.inputs()) {
        if (v == null) {
          ins.add(null);
        } else if (map.containsKey(v)) {
          ins.add(map.get(v));
        } else if (constants.containsKey(v)) {
          ins.add(constants.get(v));
        } else {
          ins.add(DeltaFolding.constantInput(gb, map, feeds, v));
        }
      }
      Node copy =
          new Node(
              n.domain(), n.opType(), ins, List.of("probe_" + i), List.copyOf(n.attributes().values()),
              "probe_node_" + i);
      gb.graph().addNode(copy);
      map.put(n.output(), copy.output());
    }
    DataType type = w.dataType().orElse(DataType.FLOAT);
    Value branch = map.get(sink.output());
    if (sink.output().dataType().orElse(type) != type) {
      branch = gb.op("Cast", List.of(branch), Attr.of("to", (long) type.code()));
    }
    // Q [out, ROWS]: the weights are multiplied on the right first, W'·Q, a streaming pass over
    // W' (x·W' would repack all of W' for the kernel, twice the time), then by the rows.
    feeds.put("Q", columns.computeIfAbsent(out, this::columns));
    Value qv = gb.input("Q", DataType.FLOAT, out, (long) ROWS);
    Value expected = gb.op("Add", rows(gb, linear, pv, rightProduct(gb, linear, w, qv)), gb.op("MatMul", branch, qv));
    Value got = rows(gb, linear, pv, rightProduct(gb, linear, merged, qv));
    Attr all = Attr.of("keepdims", 0L);
    gb.output(DIFF, gb.op("ReduceMax", List.of(gb.op("Abs", gb.op("Sub", got, expected))), all));
    gb.output(SCALE, gb.op("ReduceMax", List.of(gb.op("Abs", expected)), all));
  }

  /** The outputs {@link #append} adds: the largest difference and the largest expected value. */
  static final String DIFF = "probe_diff";

  static final String SCALE = "probe_scale";

  /**
   * Records the probe of {@code module} from a run's outputs ({@link #DIFF}, {@link #SCALE});
   * throws {@link ProbeFailedException} when the weight is off.
   */
  void record(String module, Map<String, Tensor> outputs) {
    WeightCheck c = new WeightCheck(module, scalar(outputs.get(DIFF)), scalar(outputs.get(SCALE)));
    weights.add(c);
    if (!(c.normalized() <= tolerance)) throw new ProbeFailedException(c, tolerance, result());
  }

  /** The modules whose weights were probed, as {@link FoldReport#folded} names them. */
  java.util.Set<String> modules() {
    return weights.stream().map(WeightCheck::module).collect(java.util.stream.Collectors.toSet());
  }

  /** How many weights were probed. */
  int count() {
    return weights.size();
  }

  /**
   * What the probes found, as a verification: one entry per weight, {@code "probe MODULE"}, whose
   * difference is {@link WeightCheck#normalized}, held to the tolerance.
   */
  ExportVerifier.Verification result() {
    return new ExportVerifier.Verification(
        weights.stream()
            .map(w -> new ExportVerifier.OutputDiff(PREFIX + w.module(), w.normalized()))
            .collect(ImmutableList.toImmutableList()),
        tolerance);
  }

  /** The name of a probed weight's entry in {@link #result}. */
  static final String PREFIX = "probe ";

  /** {@code probed 46 merged weights: max |x·W' - (x·W + branch(x))| / max(1, |x·W + branch(x)|) = ...}. */
  static String summary(ExportVerifier.Verification v) {
    if (v.outputs().isEmpty()) return "no merged weight to probe";
    ExportVerifier.OutputDiff w = v.worst();
    return String.format(
        java.util.Locale.ROOT,
        "probed %d merged weight%s on %d random rows and columns: max |x·W'·q - (x·W + branch(x))·q| /"
            + " max(1, |(x·W + branch(x))·q|) = %.3g (%s) (tolerance %.0e)",
        v.outputs().size(), v.outputs().size() == 1 ? "" : "s", ROWS, w.maxAbsDiff(),
        w.name().substring(PREFIX.length()), v.tolerance());
  }

  /** {@code op(W)·Q}: the linear's weight as it multiplies (transposed for a Gemm with transB) times Q. */
  private static Value rightProduct(GraphBuilder gb, Node linear, Value w, Value q) {
    if (linear.is("Gemm") && linear.attrLong("transB", 0) == 1) return gb.op("Gemm", List.of(w, q), Attr.of("transA", 1L));
    return gb.op("MatMul", w, q);
  }

  /** The linear's rows on {@code p}, given {@code v = op(W)·Q}: {@code p·v}, times the Gemm's alpha. */
  private static Value rows(GraphBuilder gb, Node linear, Value p, Value v) {
    if (linear.is("MatMul")) return gb.op("MatMul", p, v);
    return gb.op("Gemm", List.of(p, v), Attr.of("alpha", linear.attrFloat("alpha", 1f)));
  }

  private DenseTensor columns(long out) {
    Random r = new Random(~seed ^ out);
    float[] v = new float[(int) (out * ROWS)];
    for (int i = 0; i < v.length; i++) v[i] = (float) r.nextGaussian();
    return DenseTensor.ofFloats("Q", new long[] {out, ROWS}, v);
  }

  private DenseTensor probe(long in) {
    Random r = new Random(seed ^ in);
    float[] v = new float[(int) (ROWS * in)];
    for (int i = 0; i < v.length; i++) v[i] = (float) r.nextGaussian();
    return DenseTensor.ofFloats("P", new long[] {ROWS, in}, v);
  }

  private static double scalar(Tensor t) {
    return t.rawData().order(java.nio.ByteOrder.LITTLE_ENDIAN).getFloat(0);
  }

  /** Thrown when a merged weight fails its probe; nothing has been written. */
  static final class ProbeFailedException extends ExportVerifier.VerificationFailedException {
    ProbeFailedException(WeightCheck c, double tolerance, ExportVerifier.Verification v) {
      super(
          String.format(
              java.util.Locale.ROOT,
              "Export verification failed: the merged weight of %s does not compute what the tuned"
                  + " graph does: on random rows x and columns q, max |x·W'·q - (x·W + branch(x))·q| = %.6g, more than"
                  + " the tolerance %.0e x max(1, %.3g). Nothing was written. Check that the tuned model"
                  + " was not edited by hand after its passes ran, or export with --adapter-only.",
              c.module(), c.maxAbsDiff(), tolerance, c.scale()),
          v);
    }
  }
}
