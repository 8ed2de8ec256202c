package dev.graft.export;

import dev.graft.ir.Attr;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.ir.tensor.ExternalTensor;
import dev.graft.ir.tensor.Tensor;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * Whether a model rebuilt from an adapter is the tuned model's graph with only its trained
 * tensors open: the same opsets, inputs, outputs and nodes in the same order (domain, op, name,
 * attributes, input and output names), the same initializers, and each frozen tensor holding the
 * tuned model's data. Trained tensors ({@code trainables}) must match in type and shape only
 * (their values are what {@link AdapterProbe} checks), and may be graph inputs of the candidate
 * ({@code base_with_lora_inputs.onnx}).
 *
 * <pre>
 *   frozen tensor, both external, same file (or a hard link of it), same offset and length  =>  same
 *   otherwise                                                        compare the bytes (mapped)
 * </pre>
 *
 * A rebuilt model of a large base shares the base's data file with the tuned one (graft rewrite
 * and train link it), so the check reads no weight. Value-info (shape hints) is not compared.
 * Attributes holding graphs, types or sparse tensors, and models with local functions, are
 * not compared: they count as a difference, so the caller falls back to running whole models.
 */
final class GraphMatch {
  private GraphMatch() {}

  /** The first difference of {@code candidate} from {@code tuned}, in words; empty when none. */
  static Optional<String> difference(Model tuned, Model candidate, Set<String> trainables) {
    return difference(tuned, candidate, trainables, Ahead.NONE);
  }

  /** As above, taking byte comparisons of frozen tensors from {@code ahead} where it made them. */
  static Optional<String> difference(Model tuned, Model candidate, Set<String> trainables, Ahead ahead) {
    if (!tuned.opsets().equals(candidate.opsets())) {
      return Optional.of("opsets " + candidate.opsets() + " instead of " + tuned.opsets());
    }
    if (!tuned.functions().isEmpty() || !candidate.functions().isEmpty()) return Optional.of("local functions");
    Graph a = tuned.graph();
    Graph b = candidate.graph();
    List<Value> inA = a.inputs().stream().filter(v -> !trainables.contains(v.name())).toList();
    List<Value> inB = b.inputs().stream().filter(v -> !trainables.contains(v.name())).toList();
    Optional<String> d = values("inputs", inA, inB);
    if (d.isEmpty()) d = values("outputs", a.outputs(), b.outputs());
    if (d.isPresent()) return d;
    List<Node> na = a.nodes();
    List<Node> nb = b.nodes();
    if (na.size() != nb.size()) return Optional.of(nb.size() + " nodes instead of " + na.size());
    for (int i = 0; i < na.size(); i++) {
      Node x = na.get(i);
      Node y = nb.get(i);
      String where = "node " + i + " '" + x.displayName() + "'";
      if (!x.domain().equals(y.domain()) || !x.opType().equals(y.opType()) || !Objects.equals(x.rawName(), y.rawName())) {
        return Optional.of(where + " is '" + y.displayName() + "' (" + y.opType() + ")");
      }
      if (!names(x.inputs()).equals(names(y.inputs())) || !names(x.outputs()).equals(names(y.outputs()))) {
        return Optional.of(where + " is wired " + names(y.inputs()) + " -> " + names(y.outputs()));
      }
      Map<String, Attr> ax = x.attributeMap();
      Map<String, Attr> ay = y.attributeMap();
      if (!ax.keySet().equals(ay.keySet())) return Optional.of(where + " has attributes " + ay.keySet());
      for (String k : ax.keySet()) {
        if (!sameAttr(ax.get(k), ay.get(k))) return Optional.of(where + " has another attribute " + k);
      }
    }
    if (a.initializers().size() != b.initializers().size()) {
      return Optional.of(b.initializers().size() + " initializers instead of " + a.initializers().size());
    }
    if (!a.sparseInitializers().isEmpty() || !b.sparseInitializers().isEmpty()) return Optional.of("sparse initializers");
    List<String> frozen = new ArrayList<>();
    for (Value v : a.initializers()) {
      Tensor t = v.initializer().orElseThrow();
      Optional<Tensor> o = b.initializer(v.name()).flatMap(Value::initializer);
      if (o.isEmpty()) return Optional.of("no initializer '" + v.name() + "'");
      if (t.dataType() != o.get().dataType() || !Arrays.equals(t.dims(), o.get().dims())) {
        return Optional.of("initializer '" + v.name() + "' is " + o.get().dataType() + " " + o.get().shape());
      }
      if (!trainables.contains(v.name())) frozen.add(v.name());
    }
    // Tensors in other files are compared byte for byte, on every core: page faults of the two
    // mappings, not the comparison, take the time.
    return frozen.parallelStream()
        .filter(n -> !ahead.same(a.initializer(n).flatMap(Value::initializer).orElseThrow(),
            b.initializer(n).flatMap(Value::initializer).orElseThrow()))
        .findFirst()
        .map(n -> "initializer '" + n + "' holds other data");
  }

  private static Optional<String> values(String what, List<Value> a, List<Value> b) {
    if (!names(a).equals(names(b))) return Optional.of(what + " " + names(b) + " instead of " + names(a));
    for (int i = 0; i < a.size(); i++) {
      if (!a.get(i).type().equals(b.get(i).type())) return Optional.of(what + " '" + a.get(i).name() + "' has another type");
    }
    return Optional.empty();
  }

  private static List<String> names(List<Value> vs) {
    return vs.stream().map(v -> v == null ? "" : v.name()).toList();
  }

  /** Same data: the same region of the same file, or equal bytes. */
  static boolean sameData(Tensor a, Tensor b) {
    if (a instanceof ExternalTensor x && b instanceof ExternalTensor y && x.fileHoldsData() && y.fileHoldsData()
        && x.offset() == y.offset() && x.length() == y.length()) {
      try {
        if (Files.isSameFile(x.file(), y.file())) return true;
      } catch (IOException e) {
        // compare the bytes
      }
    }
    return a.rawData().equals(b.rawData());
  }

  /**
   * Byte comparisons of frozen tensors started ahead, on a thread of their own, while the adapter
   * is written and rebuilt: the tuned model's tensors against the base's of the same name, kept
   * by the file regions they compare (file identity, offset, length), so the rebuilt model's
   * tensors (the base's, loaded again) find them. Only a tuned model whose data file is a copy of
   * the base's needs them; a linked one compares nothing.
   */
  static final class Ahead implements AutoCloseable {
    static final Ahead NONE = new Ahead();

    private final Map<List<Object>, CompletableFuture<Boolean>> results = new ConcurrentHashMap<>();
    private final ExecutorService executor;

    private Ahead() {
      this.executor = null;
    }

    private Ahead(ExecutorService executor) {
      this.executor = executor;
    }

    /** Starts comparing each frozen tensor of {@code tuned} with the base's of the same name. */
    static Ahead start(Model tuned, Model base, Set<String> trainables) {
      ExecutorService ex = Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "graft-frozen-compare");
        t.setDaemon(true);
        return t;
      });
      Ahead ahead = new Ahead(ex);
      for (Value v : tuned.graph().initializers()) {
        if (trainables.contains(v.name())) continue;
        Tensor t = v.initializer().orElseThrow();
        Optional<Tensor> o = base.graph().initializer(v.name()).flatMap(Value::initializer);
        List<Object> key = o.map(b -> key(t, b)).orElse(null);
        if (key == null || ahead.results.containsKey(key)) continue;
        ahead.results.put(key, CompletableFuture.supplyAsync(() -> sameData(t, o.get()), ex));
      }
      return ahead;
    }

    boolean same(Tensor a, Tensor b) {
      List<Object> key = key(a, b);
      CompletableFuture<Boolean> f = key == null ? null : results.get(key);
      return f != null ? f.join() : GraphMatch.sameData(a, b);
    }

    /** The two file regions, or null where a tensor is not in a file. */
    private static List<Object> key(Tensor a, Tensor b) {
      if (!(a instanceof ExternalTensor x && b instanceof ExternalTensor y && x.fileHoldsData() && y.fileHoldsData())) {
        return null;
      }
      try {
        Object fx = Files.readAttributes(x.file(), BasicFileAttributes.class).fileKey();
        Object fy = Files.readAttributes(y.file(), BasicFileAttributes.class).fileKey();
        if (fx == null || fy == null) return null;
        return List.of(fx, x.offset(), x.length(), fy, y.offset(), y.length());
      } catch (IOException e) {
        return null;
      }
    }

    /** Stops comparisons nobody waits for (an export that failed before its graph check). */
    @Override
    public void close() {
      if (executor != null) executor.shutdownNow();
    }
  }

  private static boolean sameAttr(Attr a, Attr b) {
    if (a.type() != b.type() || !Objects.equals(a.refAttrName(), b.refAttrName())) return false;
    Object x = a.value();
    Object y = b.value();
    return switch (a.type()) {
      case FLOAT, INT -> Objects.equals(x, y);
      case STRING -> Arrays.equals((byte[]) x, (byte[]) y);
      case FLOATS -> Arrays.equals((float[]) x, (float[]) y);
      case INTS -> Arrays.equals((long[]) x, (long[]) y);
      case STRINGS -> {
        List<?> p = (List<?>) x;
        List<?> q = (List<?>) y;
        boolean same = p.size() == q.size();
        for (int i = 0; same && i < p.size(); i++) same = Arrays.equals((byte[]) p.get(i), (byte[]) q.get(i));
        yield same;
      }
      case TENSOR -> {
        Tensor p = (Tensor) x;
        Tensor q = (Tensor) y;
        yield p.dataType() == q.dataType() && Arrays.equals(p.dims(), q.dims()) && sameData(p, q);
      }
      default -> false;
    };
  }
}
