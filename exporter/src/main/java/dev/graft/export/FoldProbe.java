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
 * checked, as stored, against the tuned model's own computation on a fixed random probe P
 * ({@value #ROWS} rows), by ORT, in one small graph:
 *
 * <pre>
 *   diff  = max |lin(P, W') - (lin(P, W) + branch(P))|      lin: the linear (MatMul, or Gemm with
 *   scale = max |lin(P, W) + branch(P)|                            its alpha and transB)
 *   passes when diff <= tolerance · max(1, scale)
 * </pre>
 *
 * The branch runs as the tuned graph runs it, node for node on P (LoRA: {@code ((P·A)·B)·s}),
 * not as the fold computed W' ({@code A·(B·s)} added to W), so a wrong fold (a wrong scale, a
 * transposition, a weight written to the wrong place) shows as a difference. W' is read where
 * the export stores it (the staged data file, mapped), so the check covers the bytes written.
 * It reads W and W' once each: about what writing W' costs, against two whole-model sessions
 * for {@link ExportVerifier}'s check. It checks weights, not the graph around them (which the
 * IR {@code Verifier} checks); folds of other kinds (constant clusters, conv branches) are not
 * probed, and {@link MergedExport} runs the full check where they occur.
 *
 * <p>Like the fold graph, the probe graph takes its constants as inputs and names its values by
 * position, so one ORT session ({@link FoldSessions}) serves every weight of one shape and form.
 */
final class FoldProbe {
  /** Rows of the probe: each entry of W' is multiplied by {@value} random numbers. */
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
  private final List<WeightCheck> weights = new ArrayList<>();

  FoldProbe(double tolerance, long seed) {
    checkArgument(tolerance >= 0, "The probe tolerance must be 0 or more, got %s", tolerance);
    this.tolerance = tolerance;
    this.seed = seed;
  }

  /**
   * Checks {@code stored}, the merged weight of {@code linear} whose branch is {@code ordered}
   * (ending in {@code sink}, reading {@code x}); throws {@link ProbeFailedException} at once when
   * it is off, so a long export stops at the first wrong weight.
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
    Graph mini = gb.graph();
    Map<String, Tensor> feeds = new LinkedHashMap<>();
    DenseTensor p = probes.computeIfAbsent(in, this::probe);
    feeds.put("P", p);
    feeds.put("W", w);
    feeds.put("M", stored);
    Value pv = gb.input("P", DataType.FLOAT, (long) ROWS, in);
    Value wv = gb.input("W", w.dataType(), (Object[]) DeltaFolding.boxed(w.dims()));
    Value mv = gb.input("M", stored.dataType(), (Object[]) DeltaFolding.boxed(stored.dims()));
    Map<Value, Value> map = new IdentityHashMap<>();
    map.put(x, pv);
    for (int i = 0; i < ordered.size(); i++) {
      Node n = ordered.get(i);
      List<Value> ins = new ArrayList<>();
      for (Value v : n.inputs()) {
        if (v == null) {
          ins.add(null);
          continue;
        }
        ins.add(map.containsKey(v) ? map.get(v) : DeltaFolding.constantInput(gb, map, feeds, v));
      }
      Node copy =
          new Node(
              n.domain(), n.opType(), ins, List.of("probe_" + i), List.copyOf(n.attributes().values()),
              "probe_node_" + i);
      mini.addNode(copy);
      map.put(n.output(), copy.output());
    }
    Value branch = map.get(sink.output());
    if (sink.output().dataType().orElse(w.dataType()) != w.dataType()) {
      branch = gb.op("Cast", List.of(branch), Attr.of("to", (long) w.dataType().code()));
    }
    Value expected = gb.op("Add", linear(gb, linear, pv, wv), branch);
    Value got = linear(gb, linear, pv, mv);
    Attr all = Attr.of("keepdims", 0L);
    gb.output("diff", gb.op("ReduceMax", List.of(gb.op("Abs", gb.op("Sub", got, expected))), all));
    gb.output("scale", gb.op("ReduceMax", List.of(gb.op("Abs", expected)), all));
    Model m = gb.model(owner.defaultOpset().orElse(17));
    owner.opsets().forEach(m::setOpset);
    if (owner.irVersion() > 0) m.setIrVersion(owner.irVersion());
    var out = sessions.run(m, feeds, "the probe of a merged weight");
    WeightCheck c = new WeightCheck(module, scalar(out.get("diff")), scalar(out.get("scale")));
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
        "probed %d merged weight%s on %d random rows: max |x·W' - (x·W + branch(x))| / max(1, |x·W +"
            + " branch(x)|) = %.3g (%s) (tolerance %.0e)",
        v.outputs().size(), v.outputs().size() == 1 ? "" : "s", ROWS, w.maxAbsDiff(),
        w.name().substring(PREFIX.length()), v.tolerance());
  }

  /** The linear on {@code p}: {@code MatMul(p, w)}, or the Gemm's product without its bias. */
  private static Value linear(GraphBuilder gb, Node linear, Value p, Value w) {
    if (linear.is("MatMul")) return gb.op("MatMul", p, w);
    return gb.op(
        "Gemm",
        List.of(p, w),
        Attr.of("alpha", linear.attrFloat("alpha", 1f)),
        Attr.of("transB", linear.attrLong("transB", 0)));
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
                  + " graph does: on a random probe x, max |x·W' - (x·W + branch(x))| = %.6g, more than"
                  + " the tolerance %.0e x max(1, %.3g). Nothing was written. Check that the tuned model"
                  + " was not edited by hand after its passes ran, or export with --adapter-only.",
              c.module(), c.maxAbsDiff(), tolerance, c.scale()),
          v);
    }
  }
}
