package dev.graft.export;

import static com.google.common.base.Preconditions.checkArgument;

import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtLoraAdapter;
import ai.onnxruntime.OrtSession;
import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMap;
import dev.graft.ir.Attr;
import dev.graft.ir.Constants;
import dev.graft.ir.DataType;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.io.SessionFile;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.GraftTags;
import dev.graft.rewrite.method.Fold;
import dev.graft.rewrite.method.Methods;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import java.util.Set;

/**
 * The per-module check of an adapter export ({@link AdapterExport}), for adapters whose every
 * trained tensor sits in a linear branch (LoRA and its kin): instead of three whole-model runs
 * (the tuned model, the adapter applied to the base, the multi-LoRA graph with the adapter
 * active), two small ones.
 *
 * <pre>
 *   1. the graph:  the rebuilt model (base + replayed passes + adapter.safetensors read back) and
 *                  base_with_lora_inputs.onnx read back are the tuned graph node for node (op,
 *                  attributes, wiring, names) and every frozen tensor is the tuned model's (the
 *                  same bytes of the same file, or equal bytes) — {@link GraphMatch}
 *   2. the values: for each module, on {@value #ROWS} random rows x, by ORT in one small graph,
 *                    branch'(x)  (the candidate's branch nodes, trained tensors as read back)
 *                  = branch(x)   (the tuned graph's branch nodes, its trained tensors)
 *                  within tolerance · max(1, max |branch(x)|); once fed adapter.safetensors as
 *                  apply() read it, once with adapter.onnx_adapter active in ORT's own LoRA
 *                  loader (RunOptions.addActiveLoraAdapter), which feeds the graph inputs of the
 *                  parameters' names as in serving
 * </pre>
 *
 * Since 1 shows x·W is the same product on both sides, {@code x·W + branch'(x) = x·W + branch(x)}
 * needs only the branches: no frozen weight is read, and the check costs the adapter's size, not
 * the model's. What it cannot see, a graph that differs, makes {@code --verify auto} fall back
 * to the whole-model check; a module of another kind (a head, LayerNorm-affine) makes auto run
 * the whole-model check from the start.
 */
final class AdapterProbe {
  /** Rows of the probe: each trained entry is multiplied by {@value} random numbers. */
  static final int ROWS = 4;

  /** The name of a probed module's entry in a probe's verification. */
  static final String PREFIX = "probe ";

  /**
   * One linear branch: the tagged merge {@code Add(linear(x), branch(x))} of {@code module}, the
   * branch's nodes in graph order (ending in the producer of the merge's input 1), and x.
   */
  record Branch(String key, Node merge, Value x, List<Node> ordered, long in) {}

  private AdapterProbe() {}

  /**
   * The linear branches of {@code m} by {@code "method module"}, or why the probe cannot check
   * the trained tensors {@code trainables}: one of them is read outside a linear branch.
   */
  static Result<Map<String, Branch>> branches(Model m, Set<String> trainables) {
    Graph g = m.graph();
    Map<String, Branch> out = new LinkedHashMap<>();
    Set<String> covered = new LinkedHashSet<>();
    for (Node merge : g.nodes()) {
      if (!GraftTags.isMerge(merge)) continue;
      String method = GraftTags.method(merge).orElse("");
      String module = GraftTags.module(merge).orElse("");
      String key = method + " " + module;
      if (!(Methods.foldOf(method) instanceof Fold.LinearBranch) || !merge.is("Add")) {
        return Result.no(key + " is not a linear branch");
      }
      Map<Node, Boolean> branch = new IdentityHashMap<>();
      Set<Value> leaves = new LinkedHashSet<>();
      List<Value> stack = new ArrayList<>(List.of(merge.input(1)));
      while (!stack.isEmpty()) {
        Value v = stack.remove(stack.size() - 1);
        if (trainables.contains(v.name())) {
          covered.add(v.name());
          continue;
        }
        Node p = v.producer().orElse(null);
        boolean ours =
            p != null
                && !p.is("Constant")
                && GraftTags.method(p).filter(method::equals).isPresent()
                && GraftTags.module(p).filter(module::equals).isPresent();
        if (!ours) {
          if (Constants.valueOf(v).isEmpty()) leaves.add(v);
          continue;
        }
        if (branch.put(p, true) == null) for (Value in : p.inputs()) if (in != null) stack.add(in);
      }
      if (leaves.size() != 1) return Result.no(key + " reads " + leaves.stream().map(Value::name).toList());
      Value x = leaves.iterator().next();
      if (x.dataType().orElse(DataType.FLOAT) != DataType.FLOAT) return Result.no(key + " reads non-float data");
      Node linear = GraftTags.origin(merge.input(0)).producer().orElse(null);
      Optional<Tensor> w = linear == null || !(linear.is("MatMul") || linear.is("Gemm"))
          ? Optional.empty() : Constants.valueOf(linear.input(1));
      if (w.isEmpty() || w.get().dims().length != 2 || linear.input(0) != x) {
        return Result.no(key + " does not wrap a MatMul or Gemm of its branch's input");
      }
      long in = w.get().dims()[linear.is("Gemm") && linear.attrLong("transB", 0) == 1 ? 1 : 0];
      List<Node> ordered = g.nodes().stream().filter(branch::containsKey).toList();
      out.put(key, new Branch(key, merge, x, ordered, in));
    }
    for (String t : trainables) {
      if (!covered.contains(t)) return Result.no("trained tensor '" + t + "' is read outside every linear branch");
    }
    return Result.of(out);
  }

  /** A value or why there is none. */
  record Result<T>(T value, String why) {
    static <T> Result<T> of(T v) {
      return new Result<>(v, null);
    }

    static <T> Result<T> no(String why) {
      return new Result<>(null, why);
    }

    boolean ok() {
      return why == null;
    }
  }

  /**
   * Runs the probe of {@code candidate} against {@code tuned}: the candidate's trained tensors
   * come from {@code params} when given, else from {@code adapterFile} through ORT's LoRA loader.
   * Returns one entry per module ({@link #PREFIX} + key, the normalised difference); throws
   * {@link ProbeFailedException} naming the first module that is off, with {@code source} (the
   * file the tensors were read back from).
   */
  static ExportVerifier.Verification check(
      Model tuned,
      Map<String, Branch> expected,
      Model candidate,
      Map<String, Branch> got,
      Set<String> trainables,
      Map<String, Tensor> params,
      Path adapterFile,
      String source,
      double tolerance) {
    checkArgument(expected.keySet().equals(got.keySet()), "The candidate's branches %s differ from the tuned model's %s", got.keySet(), expected.keySet());
    GraphBuilder gb = GraphBuilder.create("adapter_probe");
    Map<String, Tensor> feeds = new LinkedHashMap<>();
    Map<Long, Value> probes = new LinkedHashMap<>();
    List<String> keys = new ArrayList<>(expected.keySet());
    for (int k = 0; k < keys.size(); k++) {
      Branch e = expected.get(keys.get(k));
      Branch c = got.get(keys.get(k));
      Value p = probes.computeIfAbsent(e.in(), in -> {
        String name = "P" + in;
        feeds.put(name, probe(name, in));
        return gb.input(name, DataType.FLOAT, (long) ROWS, in);
      });
      Value want = copy(gb, e, p, "e" + k + "_", trainables, "tuned/", feeds, tuned.graph(), true);
      Value have = copy(gb, c, p, "g" + k + "_", trainables, "", feeds, candidate.graph(), params != null);
      Attr all = Attr.of("keepdims", 0L);
      gb.output("diff" + k, gb.op("ReduceMax", List.of(gb.op("Abs", gb.op("Sub", have, want))), all));
      gb.output("scale" + k, gb.op("ReduceMax", List.of(gb.op("Abs", want)), all));
    }
    if (params != null) {
      for (String t : trainables) {
        Tensor v = params.get(t);
        checkArgument(v != null, "The adapter read back from %s lacks trained tensor '%s'", source, t);
        feeds.put(t, v);
      }
    }
    Model m = gb.model(tuned.defaultOpset().orElse(17));
    tuned.opsets().forEach(m::setOpset);
    if (tuned.irVersion() > 0) m.setIrVersion(tuned.irVersion());
    ImmutableMap<String, Tensor> out = run(m, feeds, adapterFile, source);
    ImmutableList.Builder<ExportVerifier.OutputDiff> diffs = ImmutableList.builder();
    for (int k = 0; k < keys.size(); k++) {
      double diff = scalar(out.get("diff" + k));
      double scale = scalar(out.get("scale" + k));
      double normalized = diff / Math.max(1, scale);
      if (!(normalized <= tolerance)) {
        Branch c = got.get(keys.get(k));
        throw new ProbeFailedException(keys.get(k), trainedInputs(c, trainables), source, diff, scale, tolerance);
      }
      diffs.add(new ExportVerifier.OutputDiff(PREFIX + keys.get(k), normalized));
    }
    return new ExportVerifier.Verification(diffs.build(), tolerance);
  }

  /** {@code probed 46 adapter modules on 4 random rows: max |branch'(x) - branch(x)| / ... = 0 (...)}. */
  static String summary(ExportVerifier.Verification v) {
    if (v.outputs().isEmpty()) return "no adapter module to probe";
    ExportVerifier.OutputDiff w = v.worst();
    return String.format(
        java.util.Locale.ROOT,
        "graph identical to the tuned one; probed %d module%s on %d random rows: max |branch'(x) - branch(x)| /"
            + " max(1, |branch(x)|) = %.3g (%s) (tolerance %.0e)",
        v.outputs().size(), v.outputs().size() == 1 ? "" : "s", ROWS, w.maxAbsDiff(),
        w.name().substring(PREFIX.length()), v.tolerance());
  }

  /**
   * Copies {@code b}'s nodes into the probe graph on {@code p}; trained tensors become inputs
   * named {@code prefix + name} (fed from {@code owner} when {@code feed}), other constants inputs
   * fed their values. Returns the branch's output.
   */
  private static Value copy(
      GraphBuilder gb, Branch b, Value p, String names, Set<String> trainables, String prefix,
      Map<String, Tensor> feeds, Graph owner, boolean feed) {
    Graph mini = gb.graph();
    Map<Value, Value> map = new IdentityHashMap<>();
    map.put(b.x(), p);
    for (int i = 0; i < b.ordered().size(); i++) {
      Node n = b.ordered().get(i);
      List<Value> ins = new ArrayList<>();
      for (Value v : n.inputs()) {
        if (v == null) {
          ins.add(null);
        } else if (map.containsKey(v)) {
          ins.add(map.get(v));
        } else if (trainables.contains(v.name())) {
          String name = prefix + v.name();
          Value in = mini.value(name).orElse(null);
          Tensor t = owner.initializer(v.name()).flatMap(Value::initializer).orElseThrow();
          if (in == null) {
            in = gb.input(name, t.dataType(), (Object[]) DeltaFolding.boxed(t.dims()));
            if (feed) feeds.put(name, t);
          }
          map.put(v, in);
          ins.add(in);
        } else {
          Tensor t = Constants.valueOf(v).orElseThrow(
              () -> new IllegalStateException("Branch " + b.key() + " reads '" + v.name() + "', which is not constant"));
          String name = "C" + feeds.size();
          Value in = gb.input(name, t.dataType(), (Object[]) DeltaFolding.boxed(t.dims()));
          feeds.put(name, t);
          map.put(v, in);
          ins.add(in);
        }
      }
      List<String> outs = new ArrayList<>();
      for (int o = 0; o < n.outputs().size(); o++) outs.add(names + i + "_" + o);
      Node copy = new Node(n.domain(), n.opType(), ins, outs, List.copyOf(n.attributes().values()), names + "node" + i);
      mini.addNode(copy);
      for (int o = 0; o < n.outputs().size(); o++) if (n.outputs().get(o) != null) map.put(n.output(o), copy.output(o));
    }
    return map.get(b.merge().input(1));
  }

  /** Runs the probe graph; with {@code adapterFile}, ORT's LoRA loader feeds the trained tensors. */
  private static ImmutableMap<String, Tensor> run(Model m, Map<String, Tensor> feeds, Path adapterFile, String source) {
    try (OrtSession.SessionOptions o = new OrtSession.SessionOptions()) {
      o.setIntraOpNumThreads(2);
      o.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.NO_OPT);
      OrtSession s;
      try (SessionFile file = SessionFile.write(m)) {
        s = OrtEval.ENV.createSession(file.path().toString(), o);
      }
      try (s) {
        if (adapterFile == null) return OrtEval.run(s, feeds);
        try (OrtLoraAdapter a = OrtLoraAdapter.create(adapterFile.toString())) {
          return MultiLora.run(s, a, feeds);
        }
      }
    } catch (OrtException e) {
      throw new ExportVerifier.VerificationFailedException(
          "Export verification failed: ONNX Runtime could not run the adapter's modules with the tensors of "
              + source + ": " + e.getMessage().replace('\n', ' ') + ". Nothing was written.",
          new ExportVerifier.Verification(ImmutableList.of(), 0));
    }
  }

  private static List<String> trainedInputs(Branch b, Set<String> trainables) {
    Set<String> names = new LinkedHashSet<>();
    for (Node n : b.ordered()) for (Value v : n.inputs()) if (v != null && trainables.contains(v.name())) names.add(v.name());
    return List.copyOf(names);
  }

  private static DenseTensor probe(String name, long in) {
    Random r = new Random(SEED ^ in);
    float[] v = new float[Math.toIntExact(ROWS * in)];
    for (int i = 0; i < v.length; i++) v[i] = (float) r.nextGaussian();
    return DenseTensor.ofFloats(name, new long[] {ROWS, in}, v);
  }

  private static final long SEED = 20240611L;

  private static double scalar(Tensor t) {
    return t.rawData().order(java.nio.ByteOrder.LITTLE_ENDIAN).getFloat(0);
  }

  /** Thrown when a module of the adapter, as read back, fails its probe; nothing has been written. */
  static final class ProbeFailedException extends ExportVerifier.VerificationFailedException {
    ProbeFailedException(String key, List<String> params, String source, double diff, double scale, double tolerance) {
      super(
          String.format(
              java.util.Locale.ROOT,
              "Export verification failed: %s, with %s as read back from %s, does not compute what the"
                  + " tuned graph does: on a random probe x, max |branch'(x) - branch(x)| = %.6g, more than the"
                  + " tolerance %.0e x max(1, %.3g). Nothing was written. The adapter file was not written"
                  + " as the tuned model holds it: check the disk, then export again.",
              key, String.join(", ", params), source, diff, tolerance, scale),
          new ExportVerifier.Verification(ImmutableList.of(new ExportVerifier.OutputDiff(PREFIX + key, diff)), tolerance));
    }
  }
}
