package dev.graft.export;

import static com.google.common.base.Preconditions.checkState;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMap;
import dev.graft.ir.Attr;
import dev.graft.ir.Constants;
import dev.graft.ir.DataType;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Type;
import dev.graft.ir.Use;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.io.StagedSave;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.ExternalTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.GraftTags;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.method.Fold;
import dev.graft.rewrite.method.Methods;
import dev.graft.rewrite.peft.ClassificationHeadPass;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.UnaryOperator;

/**
 * Folds every mergeable delta of a tuned model into its frozen weights, so that the merged graph
 * runs the base model's operators plus the head. Works in place. Which rule applies to a node is
 * the method's answer ({@link Methods#foldOf}, a {@link Fold}), never a list kept here; each rule
 * reads the Graft tags ({@link GraftTags}) the passes left:
 *
 * <pre>
 *   1. dropout         Dropout(x) tagged by a pass                         =>  x        (training only)
 *   2. LINEAR_BRANCH   Add(Linear(x, W), branch(x)), the merge Add tagged  =>  Linear(x, W + ΔW),
 *                      (LoRA: Mul(MatMul(MatMul(x, A), B), s); Taylor:         ΔW = branch(I), the
 *                      Gather(MatMul(x, Concat(dW, Z, 1)), idx, -1))           branch run on the identity
 *                      (Gemm: W + ΔWᵀ / alpha when transB; W + ΔW / alpha otherwise); Taylor
 *                      channels on a Conv join the weight instead and fold by rule 3
 *   3. CONSTANTS       a cluster of tagged nodes that reads constants only, e.g. LayerNorm-affine's
 *                      Mul(gamma, Add(dgamma, 1)) and Add(beta, dbeta), BitFit's Add(b, db), DoRA's
 *                      m·V/‖V‖, a reparameterisation MLP  =>  one initializer holding its value;
 *                      where the cluster wraps an original parameter (role merge), the parameter
 *                      itself takes the value, so the graph keeps its names and its op census
 *   4. IN_PLACE        trained tensors that are the model's own weights (full fine-tuning): their
 *                      trainable records go, the weights stay
 * </pre>
 *
 * All arithmetic runs on ONNX Runtime ({@link OrtEval}): rule 2 runs the branch's nodes as a
 * graph of their own on the identity, then {@code W + ΔW}; rule 3 runs the cluster. Tagged nodes
 * of methods whose fold is {@link Fold.Kept} (adapters, prompts, the classification head) stay as
 * nodes with constant weights and are listed in {@link FoldReport#kept}. Initializers that fall
 * out of use (A, B, s, the deltas) are removed, and so are their {@code graft.trainable} entries;
 * entries of kept modules stay.
 *
 * <p>A method whose fold is mergeable must fold completely: a branch in a shape the rule does not
 * recognise is an error, never silently kept. The one exception is asked for: a linear branch
 * over a 4-bit {@code com.microsoft MatMulNBits} (ORT GenAI's int4 models). Its weight is packed
 * uint8 with per-block scales, so {@code W + ΔW} would have to be re-quantised, adding the 4-bit
 * rounding error to the tuned model's. {@link Quantized#REFUSE} (the default) checks every
 * branch before changing anything and refuses in one line naming the way out; {@link
 * Quantized#KEEP} leaves those branches as nodes beside the 4-bit weights (listed in {@link
 * FoldReport#kept}) and folds the rest:
 *
 * <pre>
 *   Add(MatMulNBits(x, Wq, scales), Mul(MatMul(MatMul(x, A), B), s))   kept as it is (KEEP)
 * </pre>
 */
public final class DeltaFolding {
  private DeltaFolding() {}

  /** What to do with linear branches over 4-bit {@code MatMulNBits} weights (see the class comment). */
  public enum Quantized {
    /** Refuse the whole fold, before any change, naming --keep-unmerged and --adapter-only. */
    REFUSE,
    /** Keep those branches as nodes; fold everything else. */
    KEEP
  }

  /**
   * Where the linear-branch rule puts each merged weight: {@link #apply} stores one computed on
   * the heap; a store with a {@link #scratch} buffer has ORT compute the weight into it instead
   * and {@link #put}s it from there, so the weight never passes through the heap.
   */
  interface MergedStore extends UnaryOperator<Tensor>, AutoCloseable {
    /**
     * A direct buffer of {@code bytes} bytes for ORT to write a merged weight into, reused from
     * weight to weight (its pages are faulted in once); empty: compute on the heap.
     */
    Optional<ByteBuffer> scratch(long bytes);

    /**
     * Stores the weight ORT wrote into {@code scratch} and returns the tensor that reads it back;
     * the buffer is not handed out again until the store is done with it. The tensor may be read
     * only after {@link #ready} of it or {@link #flush}.
     */
    Tensor put(String name, DataType type, long[] dims, ByteBuffer scratch);

    /**
     * Copies {@code unchanged}, a large weight the export keeps as it is, into the store while
     * the merged weights are computed, and returns the tensor that reads the copy (after {@link
     * #ready} of it or {@link #flush}).
     */
    Tensor copyAhead(ExternalTensor unchanged);

    /** Returns once {@code t}, if this store {@link #put} or copied it, is stored. */
    void ready(Tensor t);

    /** Returns once every weight {@link #put} is stored; throws the first failure. */
    void flush();

    /** Flushes, then frees what the store holds. */
    @Override
    void close();

    /**
     * Into {@code staged}: each weight is computed into a buffer aligned for direct I/O and
     * written to the staged file past the page cache ({@link StagedSave#write}) by a writer
     * thread while ORT computes the next weight into a second buffer. (Not into a mapped region of
     * the file, as before: the dirty mapped pages slowed every later write to the file, the
     * unchanged weights' copy among them, five to ten times; docs/large-models.md.)
     */
    static MergedStore into(StagedSave staged) {
      return new StagedStore(staged);
    }
  }

  /**
   * {@link MergedStore#into}: at most two buffers, of the largest weight so far, one written while
   * ORT computes into the other; one writer thread, which also copies the unchanged weights
   * (queued first, before the merged ones) while ORT computes.
   */
  private static final class StagedStore implements MergedStore {
    /** A write in flight: the tensor, the buffer it holds (null for a copy), the write. */
    private record Pending(ExternalTensor tensor, ByteBuffer buffer, Future<?> write) {}

    /** Buffers at most: one being written while ORT computes into the other. */
    private static final int BUFFERS = 2;

    private final StagedSave staged;
    private final ExecutorService writer =
        Executors.newSingleThreadExecutor(
            r -> {
              Thread t = new Thread(r, "graft-export-writer");
              t.setDaemon(true);
              return t;
            });
    /** Buffers not in use; a weight gets a slice of one at least its size. */
    private final ArrayDeque<ByteBuffer> free = new ArrayDeque<>();
    /** The buffer each slice handed out by {@link #scratch} belongs to. */
    private final Map<ByteBuffer, ByteBuffer> lent = new IdentityHashMap<>();
    private int made;
    private final ArrayDeque<Pending> pending = new ArrayDeque<>();

    StagedStore(StagedSave staged) {
      this.staged = staged;
    }

    @Override
    public Tensor apply(Tensor t) {
      return staged.put(t);
    }

    /**
     * A slice of a free buffer of at least {@code bytes}; a free buffer too small is dropped for
     * a larger one, so the store holds at most two buffers of the largest weight so far (for a
     * 7B decoder's MLP, 2 × 172 MiB), whatever the mix of shapes.
     */
    @Override
    public Optional<ByteBuffer> scratch(long bytes) {
      if (bytes > Integer.MAX_VALUE) return Optional.empty();
      ByteBuffer base = null;
      while (base == null) {
        base = free.stream().filter(b -> b.capacity() >= bytes).findFirst().orElse(null);
        if (base != null) {
          free.remove(base);
        } else if (made < BUFFERS || !free.isEmpty()) {
          if (made >= BUFFERS) {
            free.remove(); // too small: its memory goes with the next collection
            made--;
          }
          base = dev.graft.ir.io.DirectWrites.alignedBuffer((int) bytes).order(ByteOrder.nativeOrder());
          made++;
        } else {
          awaitOldest(); // frees a buffer
        }
      }
      ByteBuffer slice = base.duplicate().clear().limit((int) bytes).slice().order(ByteOrder.nativeOrder());
      lent.put(slice, base);
      return Optional.of(slice);
    }

    @Override
    public Tensor put(String name, DataType type, long[] dims, ByteBuffer scratch) {
      ByteBuffer base = lent.remove(scratch);
      checkState(base != null, "Merged weight '%s' was not computed into a buffer of this store", name);
      ExternalTensor placed = staged.place(name, type, dims);
      ByteBuffer bytes = scratch.duplicate().clear();
      pending.add(new Pending(placed, base, writer.submit(() -> staged.write(placed, bytes))));
      return placed;
    }

    @Override
    public Tensor copyAhead(ExternalTensor unchanged) {
      ExternalTensor placed = staged.place(unchanged);
      pending.add(new Pending(placed, null, writer.submit(() -> staged.copy(unchanged, placed))));
      return placed;
    }

    @Override
    public void ready(Tensor t) {
      while (pending.stream().anyMatch(p -> sameBytes(p.tensor(), t))) awaitOldest();
    }

    /** Whether {@code t} reads the bytes {@code placed} took (itself, or a renamed copy). */
    private static boolean sameBytes(ExternalTensor placed, Tensor t) {
      return placed == t
          || t instanceof ExternalTensor e
              && e.offset() == placed.offset()
              && e.length() == placed.length()
              && e.file().equals(placed.file());
    }

    @Override
    public void flush() {
      while (!pending.isEmpty()) awaitOldest();
    }

    private void awaitOldest() {
      Pending p = pending.remove();
      try {
        p.write().get();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException("Interrupted while writing merged weight '" + p.tensor().name() + "'", e);
      } catch (ExecutionException e) {
        Throwable cause = e.getCause();
        if (cause instanceof RuntimeException r) throw r;
        throw new IllegalStateException("Cannot write merged weight '" + p.tensor().name() + "': " + cause, cause);
      } finally {
        if (p.buffer() != null) free.add(p.buffer());
      }
    }

    @Override
    public void close() {
      try {
        flush();
      } finally {
        writer.shutdownNow();
      }
    }
  }

  /** Folds {@code model} in place. */
  public static FoldReport fold(Model model) {
    return fold(model, UnaryOperator.identity());
  }

  /** As {@link #fold(Model, UnaryOperator)}, refusing branches over 4-bit weights. */
  public static FoldReport fold(Model model, UnaryOperator<Tensor> store) {
    return fold(model, store, Quantized.REFUSE);
  }

  /**
   * Folds {@code model} in place; each merged weight of the linear-branch rule passes through
   * {@code store} as soon as it is computed, which may write it out and return a tensor that reads
   * it back (an export streams this way: it holds one merged weight at a time, never the model).
   * Linear branches over 4-bit weights are refused or kept as {@code quantized} says.
   */
  public static FoldReport fold(Model model, UnaryOperator<Tensor> store, Quantized quantized) {
    return fold(model, store, quantized, null);
  }

  /**
   * As {@link #fold(Model, UnaryOperator, Quantized)}; with a {@code probe}, each merged weight of
   * the linear-branch rule is checked as {@code store} returned it ({@link FoldProbe}) before the
   * next one is computed.
   */
  static FoldReport fold(Model model, UnaryOperator<Tensor> store, Quantized quantized, FoldProbe probe) {
    Graph g = model.graph();
    Set<String> keptOverQuantized = overQuantized(g, quantized);
    Set<Value> touched = Collections.newSetFromMap(new IdentityHashMap<>());
    List<String> folded = new ArrayList<>();
    int[] removed = {0};

    int dropouts = 0;
    for (Node n : g.nodes()) {
      if (!GraftTags.isGraft(n) || !n.is("Dropout")) continue;
      for (int i = 1; i < n.outputs().size(); i++) {
        Value mask = n.output(i);
        checkState(
            mask == null || !mask.hasUses(),
            "Cannot remove Graft's Dropout '%s': its mask output '%s' is used by %s. Only the"
                + " training graph may read it.",
            n.displayName(),
            mask == null ? "" : mask.name(),
            mask == null ? "" : mask.uses());
      }
      bypass(n, n.input(0));
      remove(g, n, touched, removed);
      dropouts++;
    }

    // One ORT session per distinct fold graph (weight shapes and branch form), not per weight.
    try (FoldSessions sessions = new FoldSessions();
        MergedStore writes = store instanceof MergedStore ms ? ms : null) {
      if (writes != null) copyAhead(g, writes);
      for (Node merge : g.nodes()) {
        if (!merge.isAttached()) continue; // removed by an earlier fold
        if (!GraftTags.isMerge(merge)) continue;
        String method = GraftTags.method(merge).orElse("");
        if (keptOverQuantized.contains(method + " " + GraftTags.module(merge).orElse(""))) continue;
        if (Methods.foldOf(method) instanceof Fold.LinearBranch && !convWeightForm(merge)) {
          foldLinearBranch(model, merge, touched, removed, store, sessions, probe);
          folded.add(method + " " + GraftTags.module(merge).orElse(""));
        } else if (Methods.foldOf(method) instanceof Fold.ConvBranch) {
          ConvLoraFold.fold(g, merge, touched, removed);
          folded.add(method + " " + GraftTags.module(merge).orElse(""));
        }
      }
      if (writes != null) writes.flush(); // the rules below may read merged weights
    }

    folded.addAll(foldConstantClusters(model, touched, removed));
    int initializersRemoved = removeDead(g, touched, removed);

    // Entries of parameters that no longer exist are gone with them; full fine-tuning trained the
    // weights in place, so its entries are all the folding it needs.
    List<TrainableRegistry.Entry> entries = new ArrayList<>();
    for (TrainableRegistry.Entry e : TrainableRegistry.read(model)) {
      if (Methods.foldOf(e.method()) instanceof Fold.InPlace) {
        folded.add(e.method() + " " + e.module() + " " + e.role());
        continue;
      }
      if (g.initializer(e.initializer()).isPresent()) entries.add(e);
    }
    TrainableRegistry.write(model, entries);

    Map<String, Integer> keptNodes = new LinkedHashMap<>();
    for (Node n : g.nodes()) {
      if (!GraftTags.isGraft(n)) continue;
      String method = GraftTags.method(n).orElse("");
      String key = method + " " + GraftTags.module(n).orElse("");
      if (keptOverQuantized.contains(key)) {
        keptNodes.merge(key + ", unmerged over 4-bit MatMulNBits", 1, Integer::sum);
        continue;
      }
      checkState(
          !Methods.foldOf(method).mergeable(),
          "Node '%s' (%s) of the %s module '%s' is still in the graph after folding; a merged"
              + " export must not keep it. Its inputs: %s. This is a bug in DeltaFolding or a"
              + " hand-edited graph; export with --adapter-only instead.",
          n.displayName(),
          n.opType(),
          method,
          GraftTags.module(n).orElse(""),
          n.inputs());
      keptNodes.merge(method + " " + GraftTags.module(n).orElse(""), 1, Integer::sum);
    }
    ImmutableList<String> kept =
        keptNodes.entrySet().stream()
            .map(e -> e.getKey() + " (" + e.getValue() + " node" + (e.getValue() == 1 ? "" : "s") + ")")
            .collect(ImmutableList.toImmutableList());
    return new FoldReport(ImmutableList.copyOf(folded), kept, dropouts, removed[0], initializersRemoved);
  }

  /**
   * The {@code "method module"} keys of linear branches whose linear is a {@code MatMulNBits}:
   * with {@link Quantized#REFUSE} the first one is refused (nothing has changed yet).
   */
  private static Set<String> overQuantized(Graph g, Quantized quantized) {
    Set<String> keys = new LinkedHashSet<>();
    for (Node merge : g.nodes()) {
      if (!GraftTags.isMerge(merge) || !merge.is("Add")) continue;
      String method = GraftTags.method(merge).orElse("");
      if (!(Methods.foldOf(method) instanceof Fold.LinearBranch)) continue;
      Node linear = GraftTags.origin(merge.input(0)).producer().orElse(null);
      if (linear == null || !linear.opType().equals("MatMulNBits") || !"com.microsoft".equals(linear.domain())) continue;
      String module = GraftTags.module(merge).orElse("");
      if (quantized == Quantized.REFUSE) {
        throw new IllegalArgumentException(
            method + " module '" + module + "' sits on 4-bit weights (MatMulNBits '" + linear.displayName()
                + "'), which a merge cannot change without re-quantising them. Export with --keep-unmerged"
                + " (the " + method + " stays as nodes beside the 4-bit weights) or --adapter-only --base BASE"
                + " (an .onnx_adapter for ONNX Runtime GenAI's multi-LoRA).");
      }
      keys.add(method + " " + module);
    }
    return keys;
  }

  /**
   * Hands {@code store} the large weights read from files that the fold keeps as they are, so its
   * writer copies them while ORT computes the merged ones and the commit has nothing left to
   * copy: each initializer of {@link #COPY_AHEAD_FROM} or more whose file holds it, read by no
   * Graft node, and not the weight of the node a merge wraps.
   */
  private static void copyAhead(Graph g, MergedStore store) {
    Set<Value> wrapped = Collections.newSetFromMap(new IdentityHashMap<>());
    for (Node merge : g.nodes()) {
      if (!GraftTags.isMerge(merge) || merge.inputs().isEmpty() || merge.input(0) == null) continue;
      GraftTags.origin(merge.input(0)).producer().ifPresent(n -> n.inputs().forEach(wrapped::add));
    }
    for (Value v : List.copyOf(g.initializers())) {
      if (!(v.initializer().orElseThrow() instanceof ExternalTensor e)) continue;
      if (e.length() < COPY_AHEAD_FROM || wrapped.contains(v) || !e.fileHoldsData()) continue;
      if (v.uses().stream().anyMatch(u -> GraftTags.isGraft(u.node()))) continue;
      g.setInitializer(v, store.copyAhead(e).withName(v.name()));
    }
  }

  /** The size from which {@link #copyAhead} copies a weight during the fold: 1 MiB. */
  static final long COPY_AHEAD_FROM = 1 << 20;

  // ---- rule 2: linear branches -------------------------------------------------------------------

  /**
   * Taylor channels on a Conv join its weight, not its output ({@code Conv(x, Add(W, Gather(...)))}):
   * that merge reads constants only, so rule 3 folds it into W like any constant cluster.
   */
  private static boolean convWeightForm(Node merge) {
    List<Use> uses = merge.output().uses();
    return !uses.isEmpty() && uses.stream().allMatch(u -> u.node().is("Conv") && u.index() == 1);
  }

  /**
   * {@code Add(Linear(x, W), branch(x))} with a branch linear in x and without a constant term
   * ({@link Fold.LinearBranch}): the branch's weight delta is the branch run on the identity,
   * {@code ΔW = branch(I)} ({@code [in, out]}), and the linear's weight becomes {@code W + ΔW}
   * ({@code W + ΔWᵀ / alpha} for a Gemm with transB).
   */
  private static void foldLinearBranch(
      Model model,
      Node merge,
      Set<Value> touched,
      int[] removed,
      UnaryOperator<Tensor> store,
      FoldSessions sessions,
      FoldProbe probe) {
    Graph g = model.graph();
    String method = GraftTags.method(merge).orElse("");
    String module = GraftTags.module(merge).orElse("");
    String where = method + " module '" + module + "'";
    checkState(merge.is("Add"), "%s: the merge node '%s' is %s, expected Add", where, merge.displayName(), merge.opType());

    // The branch: the nodes of this method and module that merge's input 1 depends on.
    Set<Node> branch = Collections.newSetFromMap(new IdentityHashMap<>());
    Set<Value> leaves = new LinkedHashSet<>();
    List<Value> stack = new ArrayList<>(List.of(merge.input(1)));
    while (!stack.isEmpty()) {
      Value v = stack.remove(stack.size() - 1);
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
      if (branch.add(p)) for (Value in : p.inputs()) if (in != null) stack.add(in);
    }
    checkState(
        leaves.size() == 1,
        "%s: the branch reads %s besides constants; a linear branch reads the linear's input alone."
            + " Export with --adapter-only to keep it as nodes.",
        where,
        leaves.stream().map(Value::name).toList());
    Value x = leaves.iterator().next();
    List<Node> ordered = g.nodes().stream().filter(branch::contains).toList();
    requireSoleReaders(where, ordered, branch, merge);
    Node linear = wrappedLinear(where, merge, x, method + " deltas");
    Tensor wT = constant(linear.input(1), where + ": the frozen weight");
    boolean transB = linear.is("Gemm") && linear.attrLong("transB", 0) == 1;
    float alpha = linear.is("Gemm") ? linear.attrFloat("alpha", 1f) : 1f;
    checkState(alpha != 0, "%s: Gemm '%s' has alpha 0", where, linear.displayName());
    long in = wT.dims()[transB ? 1 : 0];
    checkState(
        x.dataType().orElse(DataType.FLOAT) == DataType.FLOAT,
        "%s: the branch reads %s data; folding evaluates it on a float identity only",
        where,
        x.dataType().orElse(null));
    Node sink = merge.input(1).producer().orElseThrow();
    Merged merged;
    String key = method + " " + module;
    Probing probing = probe == null ? null : new Probing(probe, key, linear);
    try {
      merged = mergedWeight(model, ordered, sink, x, in, wT, transB, alpha, sessions, store, probing);
    } catch (FoldProbe.ProbeFailedException e) {
      throw e;
    } catch (RuntimeException e) {
      throw new IllegalStateException(
          where + ": cannot compute W + branch(I) (W " + wT.shape() + "): " + e.getMessage(), e);
    }
    Tensor stored = merged.stored();
    if (probe != null && !merged.probed()) {
      // Before the branch goes: the probe runs it as the tuned graph does.
      probe.check(key, model, ordered, sink, x, linear, wT, stored, in, sessions);
    }
    setConstant(g, linear, 1, stored);

    bypass(merge, merge.input(0));
    remove(g, merge, touched, removed);
    for (int i = ordered.size() - 1; i >= 0; i--) remove(g, ordered.get(i), touched, removed);
  }

  /**
   * {@code W + branch(I)} ({@code W + branch(I)ᵀ / alpha} for a Gemm with transB), computed by
   * ORT in one graph, W handed over as it is (a mapped external weight, without a copy). A
   * {@code MatMul(x, C)} at the branch's start is C on the identity (LoRA: ΔW = A·B·s); any
   * other reader of x gets the identity, made inside the graph, never in the heap. A product
   * scaled by one number at the branch's end scales its right factor instead (LoRA's
   * {@code A·(B·s)}: one pass over an {@code [in, out]} matrix fewer):
   *
   * <pre>
   *   I = EyeLike(ConstantOfShape([in, in]));  ΔW = branch(I);  merged = W + f(ΔW)
   * </pre>
   *
   * The branch's constants (A, B, s...) are inputs of the graph like W, and its values are named
   * by position, so the graph is the same for every weight of one shape and branch form and
   * {@code sessions} runs them all in one ORT session. Returns the weight as {@code store} keeps
   * it; a {@link MergedStore} with room for it has ORT write it there directly.
   */
  private static Merged mergedWeight(
      Model owner,
      List<Node> ordered,
      Node sink,
      Value x,
      long in,
      Tensor w,
      boolean transB,
      float alpha,
      FoldSessions sessions,
      UnaryOperator<Tensor> store,
      Probing probing) {
    if (store instanceof MergedStore ms) ms.ready(w); // a weight merged by an earlier branch
    GraphBuilder gb = GraphBuilder.create("fold_linear");
    Graph mini = gb.graph();
    Map<String, Tensor> feeds = new LinkedHashMap<>();
    feeds.put("W", w);
    Value wv = gb.input("W", w.dataType(), (Object[]) boxed(w.dims()));
    Map<Value, Value> map = new IdentityHashMap<>();
    Node scaled = scaledProduct(ordered, sink, x);
    // W + P·C in one Gemm (beta 1, no [in, out] intermediate) when the branch ends in LoRA's
    // scaled product of two matrices and nothing follows it.
    boolean gemmable =
        scaled != null && !transB && alpha == 1f && sink.output().dataType().orElse(w.dataType()) == w.dataType();
    Set<Value> matrices = Collections.newSetFromMap(new IdentityHashMap<>());
    Value merged = null;
    for (int i = 0; i < ordered.size(); i++) {
      Node n = ordered.get(i);
      if (n == sink && scaled != null) {
        map.put(sink.output(), map.get(scaled.output()));
        continue;
      }
      boolean first = n.is("MatMul") && n.input(0) == x && n.input(1) != null;
      Optional<Tensor> c = first ? Constants.valueOf(n.input(1)) : Optional.empty();
      if (c.isPresent() && c.get().dims().length == 2) {
        // MatMul(I, C) = C exactly (each sum adds zeros to one product by 1): LoRA's x·A on the
        // identity is A, without an [in, in] identity and its in²·r multiplications.
        map.put(n.output(), constantInput(gb, map, feeds, n.input(1)));
        matrices.add(map.get(n.output()));
        continue;
      }
      List<Value> ins = new ArrayList<>();
      for (Value v : n.inputs()) {
        if (v == null) {
          ins.add(null);
          continue;
        }
        if (v == x && !map.containsKey(x)) {
          map.put(x, gb.op("EyeLike", gb.op("ConstantOfShape", gb.int64s(in, in))));
        }
        ins.add(map.containsKey(v) ? map.get(v) : constantInput(gb, map, feeds, v));
      }
      if (n == scaled) {
        Value s = sink.input(sink.input(0) == scaled.output() ? 1 : 0);
        ins.set(1, gb.op("Mul", ins.get(1), constantInput(gb, map, feeds, s)));
        if (gemmable && matrices.contains(ins.get(0))) {
          merged = gb.op("Gemm", ins.get(0), ins.get(1), wv);
          map.put(n.output(), merged);
          continue;
        }
      }
      Node copy =
          new Node(
              n.domain(),
              n.opType(),
              ins,
              List.of("branch_" + i),
              List.copyOf(n.attributes().values()),
              "branch_node_" + i);
      mini.addNode(copy);
      map.put(n.output(), copy.output());
    }
    if (merged == null) {
      Value d = map.get(sink.output());
      if (transB) d = gb.op("Transpose", d);
      if (alpha != 1f) d = gb.op("Div", d, gb.scalar(alpha));
      if (sink.output().dataType().orElse(w.dataType()) != w.dataType()) {
        d = gb.op("Cast", List.of(d), Attr.of("to", (long) w.dataType().code()));
      }
      merged = gb.op("Add", wv, d);
    }
    gb.output("merged", merged);
    gb.typed(gb.graph().outputs().get(0), w.dataType(), (Object[]) boxed(w.dims()));
    Optional<ByteBuffer> scratch = store instanceof MergedStore ms ? ms.scratch(w.byteSize()) : Optional.empty();
    if (scratch.isPresent() && probing != null) {
      // The probe reads W' where ORT wrote it, in the same run: no second pass over W and W'.
      probing.probe().append(gb, map, feeds, ordered, sink, x, probing.linear(), wv, merged, in, w.dims()[transB ? 0 : 1]);
    }
    // The branch speaks the model's dialect.
    Model m = gb.model(owner.defaultOpset().orElse(17));
    owner.opsets().forEach(m::setOpset);
    if (owner.irVersion() > 0) m.setIrVersion(owner.irVersion());
    if (scratch.isPresent()) {
      // ORT writes W + ΔW into the reused buffer, the store writes it to the export's data file.
      ImmutableMap<String, Tensor> rest =
          sessions.runInto(m, feeds, "merged", w, scratch.get().duplicate().clear(), "a merged weight");
      if (probing != null) probing.probe().record(probing.module(), rest);
      Tensor stored = ((MergedStore) store).put("merged", w.dataType(), w.dims(), scratch.get());
      return new Merged(stored, probing != null);
    }
    return new Merged(store.apply(sessions.run(m, feeds, "a merged weight").get("merged")), false);
  }

  /** A merged weight as the store keeps it, and whether its fold's run probed it. */
  private record Merged(Tensor stored, boolean probed) {}

  /** The probe of one weight: who probes, the module's name, its linear. */
  private record Probing(FoldProbe probe, String module, Node linear) {}

  /**
   * The MatMul whose product {@code sink} scales by one constant number, {@code
   * Mul(MatMul(P, C), s)} with C a constant matrix, P not the branch input {@code x} and the
   * product read by the Mul alone (LoRA's {@code (x·A·B)·s}); null for any other branch end.
   */
  private static Node scaledProduct(List<Node> ordered, Node sink, Value x) {
    if (!sink.is("Mul") || sink.inputs().size() != 2) return null;
    for (int k = 0; k < 2; k++) {
      Value p = sink.input(k);
      Value s = sink.input(1 - k);
      if (p == null || s == null || p == s) continue;
      Optional<Tensor> scale = Constants.valueOf(s);
      // One number of rank 0 or 1 broadcasts without changing the product's shape.
      if (scale.isEmpty() || scale.get().numElements() != 1 || scale.get().dims().length > 1) continue;
      Node mm = p.producer().orElse(null);
      if (mm == null || !mm.is("MatMul") || !ordered.contains(mm) || mm.input(0) == x) continue;
      if (p.uses().size() != 1 || p.isGraphOutput()) continue;
      Optional<Tensor> right = Constants.valueOf(mm.input(1));
      if (right.isPresent() && right.get().dims().length == 2) return mm;
    }
    return null;
  }

  /** The fold graph's input for constant {@code v} (added once), fed its value. */
  static Value constantInput(GraphBuilder gb, Map<Value, Value> map, Map<String, Tensor> feeds, Value v) {
    Value mapped = map.get(v);
    if (mapped == null) {
      Tensor t = Constants.valueOf(v).orElseThrow();
      String name = "C" + feeds.size();
      mapped = gb.input(name, t.dataType(), (Object[]) boxed(t.dims()));
      feeds.put(name, t);
      map.put(v, mapped);
    }
    return mapped;
  }

  /** Each branch node must feed only the branch and the merge Add; otherwise folding would change other readers. */
  private static void requireSoleReaders(String where, List<Node> ordered, Set<Node> branch, Node merge) {
    for (Node n : ordered) {
      for (Value out : n.outputs()) {
        if (out == null) continue;
        for (Use u : out.uses()) {
          checkState(
              u.node() == merge || branch.contains(u.node()),
              "%s: '%s' is also read by '%s'; the branch must feed only the merge Add. Export with"
                  + " --adapter-only to keep it.",
              where,
              n.displayName(),
              u.node().displayName());
        }
        checkState(!out.isGraphOutput(), "%s: '%s' is a graph output; it cannot fold", where, out.name());
      }
    }
  }

  /**
   * The MatMul or Gemm whose output {@code merge} adds a delta to, checked to read the same x as
   * the branch ({@code branchInput}): only then does the delta fold into the weight.
   */
  private static Node wrappedLinear(String where, Node merge, Value branchInput, String what) {
    Value original = GraftTags.origin(merge.input(0));
    Node linear = original.producer().orElse(null);
    checkState(
        linear != null && (linear.is("MatMul") || linear.is("Gemm")),
        "%s wraps '%s', which %s; %s fold into MatMul and Gemm only",
        where,
        original.name(),
        linear == null ? "no node produces" : "'" + linear.displayName() + "' (" + linear.opType() + ") produces",
        what);
    checkState(
        linear.input(0) == branchInput,
        "%s: the branch reads '%s' but the linear '%s' reads '%s'; the delta folds into W only when"
            + " both read the same x",
        where,
        branchInput.name(),
        linear.displayName(),
        linear.input(0).name());
    return linear;
  }

  // ---- rule 3: constant clusters ------------------------------------------------------------------

  private static List<String> foldConstantClusters(Model model, Set<Value> touched, int[] removed) {
    Graph g = model.graph();
    Set<Node> cluster = Collections.newSetFromMap(new IdentityHashMap<>());
    List<Node> ordered = new ArrayList<>();
    for (Node n : g.nodes()) {
      if (!GraftTags.isGraft(n) || !n.subgraphs().isEmpty()) continue;
      if (GraftTags.method(n).filter(ClassificationHeadPass.METHOD::equals).isPresent()) continue;
      if (n.is("Dropout") || n.outputs().size() != 1) continue;
      boolean constant = true;
      for (Value v : n.inputs()) {
        if (v == null) continue;
        boolean fromCluster = v.producer().isPresent() && cluster.contains(v.producer().get());
        if (!fromCluster && Constants.valueOf(v).isEmpty()) {
          constant = false;
          break;
        }
      }
      if (constant) {
        cluster.add(n);
        ordered.add(n);
      }
    }
    if (ordered.isEmpty()) return List.of();

    // Sinks: cluster outputs read outside the cluster (or graph outputs).
    List<Node> sinks = new ArrayList<>();
    for (Node n : ordered) {
      Value out = n.output();
      boolean outside = out.isGraphOutput();
      for (Use u : out.uses()) outside |= !cluster.contains(u.node());
      if (outside) sinks.add(n);
    }
    ImmutableMap<String, Tensor> values = evaluate(model, ordered, sinks, Map.of());

    Set<Value> replaced = Collections.newSetFromMap(new IdentityHashMap<>());
    Set<String> modules = new LinkedHashSet<>();
    for (Node n : ordered) modules.add(GraftTags.method(n).orElse("") + " " + GraftTags.module(n).orElse(""));
    for (Node sink : sinks) {
      Value out = sink.output();
      Tensor t = values.get(out.name());
      // Behind nested merges (BitFit's Add on LayerNorm-affine's Add) lies the original parameter.
      Value param = GraftTags.isMerge(sink) ? GraftTags.origin(out) : null;
      boolean wrapsParameter =
          GraftTags.isMerge(sink)
              && param != null
              && !cluster.contains(param.producer().orElse(null))
              // read by this cluster alone (DoRA reads W twice: V = W + ΔW and the norm ‖W‖)
              && param.uses().stream().allMatch(u -> cluster.contains(u.node()))
              && !param.isGraphInput()
              && !param.isGraphOutput()
              && Constants.valueOf(param).map(p -> p.dataType() == t.dataType()).orElse(false)
              && replaced.add(param);
      Value replacement;
      if (wrapsParameter) {
        // The original parameter takes the folded value: names and census stay the base's.
        replacement = param;
        if (param.isInitializer()) {
          g.setInitializer(param, t.withName(param.name()));
          param.setType(Type.tensor(t.dataType(), t.shape()));
        } else {
          param.producer().orElseThrow().setAttr(Attr.of("value", t.withName(null)));
        }
      } else {
        String name = g.freshName(out.name() + "_folded");
        replacement = g.addInitializer(name, t.withName(name));
      }
      bypass(sink, replacement);
    }
    for (int i = ordered.size() - 1; i >= 0; i--) remove(g, ordered.get(i), touched, removed);
    return List.copyOf(modules);
  }

  /**
   * Runs the cluster as a graph of its own, its non-constant inputs given by {@code given}; the
   * sinks' values by output name.
   */
  private static ImmutableMap<String, Tensor> evaluate(
      Model owner, List<Node> ordered, List<Node> sinks, Map<Value, Tensor> given) {
    GraphBuilder gb = GraphBuilder.create("fold_constants");
    Graph mini = gb.graph();
    Map<Value, Value> map = new IdentityHashMap<>();
    for (Node n : ordered) {
      List<Value> ins = new ArrayList<>();
      for (Value v : n.inputs()) {
        if (v == null) {
          ins.add(null);
          continue;
        }
        Value mapped = map.get(v);
        if (mapped == null) {
          Tensor t = given.containsKey(v) ? given.get(v) : Constants.valueOf(v).orElseThrow();
          mapped = mini.addInitializer(v.name(), t.withName(v.name()));
          map.put(v, mapped);
        }
        ins.add(mapped);
      }
      Node copy =
          new Node(
              n.domain(),
              n.opType(),
              ins,
              List.of(n.output().name()),
              List.copyOf(n.attributes().values()),
              n.name());
      mini.addNode(copy);
      map.put(n.output(), copy.output());
    }
    for (Node s : sinks) mini.addOutput(map.get(s.output()));
    // The cluster speaks the model's dialect (opset 11 Unsqueeze takes axes as an attribute).
    Model m = gb.model(owner.defaultOpset().orElse(17));
    owner.opsets().forEach(m::setOpset);
    if (owner.irVersion() > 0) m.setIrVersion(owner.irVersion());
    return OrtEval.run(m, Map.of());
  }

  // ---- shared edits -------------------------------------------------------------------------------

  /** Makes every reader of {@code n}'s output, graph outputs included, read {@code keep}. */
  static void bypass(Node n, Value keep) {
    Value out = n.output();
    Graph g = n.graph();
    if (out.isGraphOutput()) {
      // Splice.wrap gave the wrapper the output's name; hand it back.
      String name = out.name();
      Type type = out.type().orElse(null);
      out.replaceAllUsesWith(keep, true);
      g.rename(out, g.freshName(name + "_unfolded"));
      checkState(
          keep.producer().isPresent(),
          "Cannot fold '%s': graph output '%s' would become the constant '%s'",
          n.displayName(),
          name,
          keep.name());
      g.rename(keep, name);
      keep.setType(type);
    } else {
      out.replaceAllUsesWith(keep);
    }
  }

  static void remove(Graph g, Node n, Set<Value> touched, int[] removed) {
    for (Value v : n.inputs()) if (v != null) touched.add(v);
    g.removeNode(n);
    removed[0]++;
  }

  /** Removes initializers and Constant nodes among {@code touched} that nothing reads any more. */
  private static int removeDead(Graph g, Set<Value> touched, int[] removed) {
    int initializers = 0;
    boolean again = true;
    while (again) {
      again = false;
      for (Value v : List.copyOf(touched)) {
        if (v.hasUses() || v.isGraphOutput() || v.isGraphInput()) continue;
        if (v.isInitializer() && g.initializer(v.name()).orElse(null) == v) {
          g.removeInitializer(v);
          initializers++;
          touched.remove(v);
        } else if (v.producer().isPresent() && v.producer().get().is("Constant") && v.producer().get().isIn(g)) {
          remove(g, v.producer().get(), touched, removed);
          touched.remove(v);
          again = true;
        } else {
          touched.remove(v);
        }
      }
    }
    return initializers;
  }

  /** Replaces the constant at {@code node}'s input {@code i}: in place when nothing else reads it. */
  static void setConstant(Graph g, Node node, int i, Tensor t) {
    Value w = node.input(i);
    boolean sole = w.uses().size() == 1 && !w.isGraphInput() && !w.isGraphOutput();
    if (sole && w.isInitializer()) {
      g.setInitializer(w, t.withName(w.name()));
    } else if (sole && w.producer().isPresent() && w.producer().get().is("Constant")) {
      w.producer().get().setAttr(Attr.of("value", t.withName(null)));
    } else {
      // A shared (tied) weight: the merged copy serves this node alone.
      String name = g.freshName(w.name() + "_merged");
      node.setInput(i, g.addInitializer(name, t.withName(name)));
    }
  }

  static Tensor constant(Value v, String what) {
    Optional<Tensor> t = Constants.valueOf(v);
    checkState(
        t.isPresent(),
        "%s '%s' is not a constant (an initializer or a Constant node); it cannot be folded",
        what,
        v == null ? "(absent)" : v.name());
    return t.get();
  }

  static Long[] boxed(long[] dims) {
    Long[] out = new Long[dims.length];
    for (int i = 0; i < dims.length; i++) out[i] = dims[i];
    return out;
  }
}
