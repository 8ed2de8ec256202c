package dev.graft.trainer.train;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableSet;
import dev.graft.ir.Attr;
import dev.graft.ir.Constants;
import dev.graft.ir.DataType;
import dev.graft.ir.Dim;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Shape;
import dev.graft.ir.Type;
import dev.graft.ir.Use;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.TopologicalOrder;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.trainer.autodiff.rules.UnpadRules;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * Padding-free training: the token-wise part of a transformer runs on the real tokens of a batch
 * only, not on its padding. In the training copy (never in the forward model or the export), a
 * batch's hidden states {@code [batch, seq, hidden]} are gathered to {@code [1, tokens, hidden]}
 * (the positions where the attention mask is non-zero), the linear layers, norms, activations and
 * residual adds run on those rows, and the values are scattered back to {@code [batch, seq, ...]}
 * (zeros at padding) only where an op mixes positions: the attention's head split, the pooling.
 *
 * <pre>
 *   idx  = NonZero(Reshape(graft.token_mask, [-1]))                      [1, tokens]
 *   unpad(x) = Gather(Reshape(x, [-1, hidden]), idx, axis=0)             [1, tokens, hidden]
 *   pad(u)   = Reshape(ScatterND(zeros[batch*seq, hidden], Unsqueeze(idx, 2), u), [batch, seq, hidden])
 * </pre>
 *
 * Where a pad feeds only an attention head split (Reshape to [batch, seq, h, d], Transpose to
 * [batch, h, seq, d]) it scatters each token's head slices straight into [batch, h, seq, d], and
 * an unpad of a head merge gathers straight from them, so neither the transposes nor the padded
 * [batch, seq, h*d] copies are made ({@code -Dgraft.train.unpadHeads=0} turns that off).
 *
 * <p>The heads' rows are packed too ({@link Result#packed}; {@code -Dgraft.train.packAttention=0}
 * turns it off): the tokens of short rows sit side by side in shared rows of [rows, h, seq, d],
 * where {@value #PACKING} places them ({@link #packing}, which {@link Trainer} feeds from the token
 * mask), and each score's key mask becomes block-diagonal, so that a token still attends to the
 * keys of its own batch row only. SpamAssassin batches at 128 tokens take 24-29 attention rows
 * instead of 32 (docs/performance.md, "Session 11").
 *
 * <p>The gradient of unpad is a scatter and that of pad a gather ({@code GatherRules}, {@code
 * ScatterRules}), so the backward pass is padding-free too. On a batch of dynamic padding the
 * matmuls of every linear layer shrink by the padding's share of the tokens (62% of the tokens on
 * the UCI sentences at batch 32); on a batch without padding the rewrite costs a gather and four
 * scatters a layer (see docs/performance.md).
 *
 * <p>What moves: a node is row-wise when each output row {@code [b, s, :]} depends only on input
 * row {@code [b, s, :]}: MatMul by a 2-D weight, elementwise ops whose other operands do not vary
 * along batch or sequence (biases, scales), unary activations, LayerNormalization and
 * SkipLayerNormalization over the last axis, reductions and softmax over the last axis. Connected
 * groups of row-wise nodes move together, and only groups with a MatMul (the rest would cost
 * more in gathers than they save).
 *
 * <p>Which rows are real comes from an input of its own, {@value #TOKEN_MASK} (the mask's type
 * and shape), which {@link Trainer} feeds with the attention mask. Fed with ones instead, the
 * graph gathers every row and computes what the padded graph computes; that is the check below.
 *
 * <p>When it is exact: a padded position's row now holds zeros where it held what the model
 * computed from the padding token. The loss is unchanged when nothing the loss reads depends on
 * those rows: the attention masks padded keys (their softmax weight is exactly 0), and the head
 * pools with the mask or reads a real token. That is a property of the model, not of the graph's
 * form, so {@link Trainer} checks it on the first padded batch (the train step run with the
 * token mask and with ones: loss, logits at real tokens and gradient norm must agree) and falls
 * back to padded training when it does not hold.
 */
public final class Unpadding {
  /** The symbolic size of the token axis of unpadded values. */
  public static final String TOKENS = "graft_tokens";

  /** The input that says which rows are real: the mask's values, or ones for the padded computation. */
  public static final String TOKEN_MASK = "graft.token_mask";

  /**
   * The input that says where each real token sits in the packed attention rows ({@link
   * #packing}), when the rewrite packs them ({@link Result#packed}).
   */
  public static final String PACKING = "graft.packing";

  /** The symbolic size of the row axis of packed attention values. */
  public static final String PACKED_ROWS = "graft_packed_rows";

  /** The attention-mask input name that {@link #maskInput} looks for. */
  public static final String DEFAULT_MASK = "attention_mask";

  private static final Set<String> UNARY =
      ImmutableSet.of(
          "Relu", "Gelu", "FastGelu", "QuickGelu", "Erf", "Tanh", "Sigmoid", "Exp", "Sqrt", "Neg", "Abs",
          "Cast", "Identity", "Reciprocal", "Log", "Softplus", "Softsign", "LeakyRelu", "Elu", "Selu",
          "HardSigmoid", "HardSwish", "Mish", "Sin", "Cos");
  private static final Set<String> BINARY = ImmutableSet.of("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min");
  private static final Set<String> LAST_AXIS_REDUCTIONS =
      ImmutableSet.of("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceSumSquare", "ReduceL2");
  private static final Set<String> ROW_NORMS =
      ImmutableSet.of("LayerNormalization", "SkipLayerNormalization", "SimplifiedLayerNormalization",
          "SkipSimplifiedLayerNormalization", "RMSNormalization");

  private Unpadding() {}

  /**
   * False under {@code -Dgraft.train.unpadHeads=0}: pads and unpads next to an attention head split
   * or merge stay a scatter or gather of whole rows plus the model's transpose (for A/B runs).
   */
  static boolean headsEnabled() {
    return !"0".equals(System.getProperty("graft.train.unpadHeads", "1"));
  }

  /**
   * False under {@code -Dgraft.train.packAttention=0}: every batch row keeps an attention row of
   * its own (for A/B runs).
   */
  static boolean packEnabled() {
    return !"0".equals(System.getProperty("graft.train.packAttention", "1"));
  }

  /** False under {@code -Dgraft.train.unpad=0}, which makes {@link Trainer} train padded (for A/B runs). */
  public static boolean enabled() {
    return !"0".equals(System.getProperty("graft.train.unpad", "1"));
  }

  /**
   * What the rewrite did: the groups of row-wise nodes moved, the nodes in them, the gathers and
   * scatters at their borders; or why nothing moved.
   */
  public record Result(int groups, int nodes, int unpads, int pads, boolean packed, Optional<String> skipped) {
    public boolean applied() {
      return groups > 0;
    }

    static Result skipped(String why) {
      return new Result(0, 0, 0, 0, false, Optional.of(why));
    }
  }

  /** Whether attention mask {@code mask} marks any position as padding (a 0). */
  public static boolean hasPadding(Tensor mask) {
    for (double v : mask.toDoubleArray()) if (v == 0) return true;
    return false;
  }

  /**
   * Where each token of a batch sits in the packed attention rows, fed as {@value #PACKING}: for
   * the real tokens of {@code tokenMask} [batch, seq] (non-zero), {@code row * seq + position} in
   * rows of {@code seq} positions, each batch row's tokens in order and side by side; 0 at padding.
   * Rows go longest first into the first packed row with room for them (first-fit decreasing);
   * a row without padding keeps a packed row of its own, and a mask of ones packs each row into
   * its own place, so that the packed graph then computes what the padded one does.
   */
  public static Tensor packing(Tensor tokenMask) {
    int[] lengths = rowLengths(tokenMask); // checks the rank first
    long[] dims = tokenMask.dims();
    int rows = lengths.length;
    int seq = Math.toIntExact(dims[1]);
    double[] m = tokenMask.toDoubleArray();
    Integer[] order = new Integer[rows];
    for (int r = 0; r < rows; r++) order[r] = r;
    Arrays.sort(order, (a, b) -> Integer.compare(lengths[b], lengths[a])); // stable: ties in batch order
    List<Integer> used = new ArrayList<>(); // positions taken in each packed row
    long[] dest = new long[m.length];
    for (int r : order) {
      int at = 0;
      while (at < used.size() && used.get(at) + lengths[r] > seq) at++;
      if (at == used.size()) used.add(0);
      long next = (long) at * seq + used.get(at);
      for (int s = 0; s < seq; s++) if (m[r * seq + s] != 0) dest[r * seq + s] = next++;
      used.set(at, used.get(at) + lengths[r]);
    }
    return DenseTensor.ofLongs(PACKING, dims, dest);
  }

  /** The real tokens (non-zero entries) of each row of a token mask [batch, seq]. */
  static int[] rowLengths(Tensor tokenMask) {
    long[] dims = tokenMask.dims();
    checkArgument(dims.length == 2, "the token mask is [batch, seq], not %s", Arrays.toString(dims));
    int seq = Math.toIntExact(dims[1]);
    double[] m = tokenMask.toDoubleArray();
    int[] lengths = new int[Math.toIntExact(dims[0])];
    for (int i = 0; i < m.length; i++) if (m[i] != 0) lengths[i / seq]++;
    return lengths;
  }

  /** The model's {@value #DEFAULT_MASK} input when it has one of rank 2, else empty. */
  public static Optional<String> maskInput(Model m) {
    for (Value in : m.graph().inputs()) {
      if (in.name().equals(DEFAULT_MASK) && !in.isInitializer() && in.shape().map(s -> s.rank() == 2).orElse(false)) {
        return Optional.of(in.name());
      }
    }
    return Optional.empty();
  }

  /**
   * Rewrites {@code m} in place (it must carry the types shape inference gives). The mask is a
   * {@code [batch, seq]} graph input, non-zero at real tokens.
   */
  public static Result apply(Model m, String maskName) {
    Graph g = m.graph();
    Value mask = g.inputs().stream().filter(v -> v.name().equals(maskName)).findFirst().orElse(null);
    if (mask == null) return Result.skipped("the model has no input '" + maskName + "'");
    Shape ms = mask.shape().orElse(null);
    if (ms == null || ms.rank() != 2) {
      return Result.skipped("the mask '" + maskName + "' is not of rank 2 [batch, sequence]: " + ms);
    }
    if (!named(ms.dim(0)) || !named(ms.dim(1))) {
      return Result.skipped("the mask '" + maskName + "' has an unnamed dimension: " + ms);
    }
    return new Unpadding.Run(g, mask, ms.dim(0), ms.dim(1)).run();
  }

  /**
   * Replaces the placeholders {@link #apply} wrote ({@link UnpadRules}) with standard ops; run
   * after differentiation, so that their gradients are each other's. Returns how many.
   */
  public static int lower(Model m) {
    Graph g = m.graph();
    int n = 0;
    for (Node p : List.copyOf(g.nodes())) {
      if (!p.isIn(g) || !UnpadRules.DOMAIN.equals(p.domain())) continue;
      boolean padding = p.opType().equals(UnpadRules.PAD) || p.opType().equals(UnpadRules.PAD_HEADS);
      GraphBuilder b = GraphBuilder.on(g).before(p).prefix(padding ? "/graft/pad" : "/graft/unpad");
      Value out =
          switch (p.opType()) {
            case UnpadRules.UNPAD -> UnpadRules.unpad(b::op, p.input(0), p.inputs());
            case UnpadRules.PAD -> UnpadRules.pad(b::op, p.input(0), p.inputs());
            case UnpadRules.UNPAD_HEADS -> UnpadRules.unpadHeads(b::op, p.input(0), p.inputs());
            case UnpadRules.PAD_HEADS -> UnpadRules.padHeads(b::op, p.input(0), p.inputs());
            default -> throw new IllegalStateException("unknown placeholder " + p.domain() + "." + p.opType());
          };
      g.replaceValue(p.output(), out, List.of(p));
      n++;
    }
    return n;
  }

  private static boolean named(Dim d) {
    return d instanceof Dim.Fixed || d instanceof Dim.Symbolic;
  }

  private static boolean same(Dim a, Dim b) {
    return named(a) && a.equals(b);
  }

  private static final class Run {
    private final Graph g;
    private final Value mask;
    private final Dim batch;
    private final Dim seq;
    private final Map<Value, Value> unpadded = new IdentityHashMap<>();
    private final Map<String, List<Value>> shapesByRest = new HashMap<>();
    private final Map<HeadSize, List<Value>> headInputsBySize = new HashMap<>();
    private final Map<String, Value> shapeOfRest = new HashMap<>();
    private Value idx;
    private Value idx3;
    private Value flatCount;
    private Value maskShape;
    private int unpads;
    private int pads;

    Run(Graph g, Value mask, Dim batch, Dim seq) {
      this.g = g;
      this.mask = mask;
      this.batch = batch;
      this.seq = seq;
    }

    Result run() {
      List<Node> order = TopologicalOrder.of(g);
      List<Node> rowWise = new ArrayList<>();
      Map<Node, Integer> index = new IdentityHashMap<>();
      for (Node n : order) {
        if (rowWise(n)) {
          index.put(n, rowWise.size());
          rowWise.add(n);
        }
      }
      // Groups: row-wise nodes joined by the token-major values between them.
      int[] parent = new int[rowWise.size()];
      for (int i = 0; i < parent.length; i++) parent[i] = i;
      for (Node n : rowWise) {
        for (Value in : n.inputs()) {
          Node p = in == null ? null : in.producer().orElse(null);
          Integer j = p == null ? null : index.get(p);
          if (j != null && tokenMajor(in)) union(parent, index.get(n), j);
        }
      }
      boolean[] hasMatMul = new boolean[rowWise.size()];
      for (Node n : rowWise) if (n.is("MatMul")) hasMatMul[find(parent, index.get(n))] = true;
      List<Node> moved = new ArrayList<>();
      Set<Integer> groups = new HashSet<>();
      for (Node n : rowWise) {
        int root = find(parent, index.get(n));
        if (hasMatMul[root]) {
          moved.add(n);
          groups.add(root);
        }
      }
      if (moved.isEmpty()) {
        return Result.skipped("no linear layer runs on [batch, sequence, features] rows of the mask's shape");
      }
      Set<Node> movedSet = Collections.newSetFromMap(new IdentityHashMap<>());
      movedSet.addAll(moved);
      indices(order.get(0));
      for (Node n : moved) {
        GraphBuilder b = GraphBuilder.on(g).before(n).prefix("/graft/unpad");
        List<Value> ins = new ArrayList<>();
        for (Value in : n.inputs()) {
          if (in != null && tokenMajor(in)) {
            Node p = in.producer().orElse(null);
            ins.add(p != null && movedSet.contains(p) ? unpadded.get(in) : unpad(b, in));
          } else {
            ins.add(in);
          }
        }
        List<String> outNames = new ArrayList<>();
        for (Value o : n.outputs()) outNames.add(o == null ? "" : g.freshName(o.name() + "_unpadded"));
        Node copy = new Node(n.rawDomain(), n.opType(), ins, outNames, List.copyOf(n.attributes().values()), n.name());
        g.insertBefore(n, copy);
        for (int i = 0; i < n.outputs().size(); i++) {
          Value o = n.output(i);
          if (o == null) continue;
          Value u = copy.output(i);
          u.setType(unpaddedType(o));
          unpadded.put(o, u);
        }
      }
      // Last consumer first, so that a moved node's outputs are read only outside the groups.
      for (int k = moved.size() - 1; k >= 0; k--) {
        Node n = moved.get(k);
        GraphBuilder b = GraphBuilder.on(g).before(n).prefix("/graft/pad");
        List<Value> olds = new ArrayList<>();
        List<Value> news = new ArrayList<>();
        for (Value o : n.outputs()) {
          if (o == null || (!o.hasUses() && !o.isGraphOutput())) continue;
          Value p = pad(b, unpadded.get(o), o);
          p.setTypeOf(o);
          o.replaceAllUsesWith(p, true);
          olds.add(o);
          news.add(p);
        }
        g.removeNode(n);
        for (int i = 0; i < olds.size(); i++) g.rename(news.get(i), olds.get(i).name());
      }
      boolean packed = false;
      if (headsEnabled()) {
        fuseHeads();
        if (packEnabled()) packed = packAttention();
      }
      return new Result(groups.size(), moved.size(), unpads, pads, packed, Optional.empty());
    }

    // ---- attention head splits and merges -----------------------------------------------------

    /**
     * A pad whose padded [batch, seq, h*d] value is only split into heads ({@code Reshape} to
     * [batch, seq, h, d], then {@code Transpose} [0,2,1,3], or [0,2,3,1] for a transposed key)
     * becomes one scatter of each token's head slices into [batch, h, seq, d]; an unpad of a value
     * that is only the merge of heads ({@code Transpose} [0,2,1,3] of [batch, h, seq, d], then
     * {@code Reshape}) one gather of them. The transposes of head-major copies in the forward and
     * the backward pass go, and so do the padded [batch, seq, h*d] copies (about 2.5% of
     * bge-small's step at 128 tokens; docs/performance.md, "Session 8").
     */
    private void fuseHeads() {
      for (Node p : List.copyOf(g.nodes())) {
        if (!p.isIn(g) || !UnpadRules.DOMAIN.equals(p.domain())) continue;
        if (p.opType().equals(UnpadRules.PAD)) fusePadSplit(p);
        else if (p.opType().equals(UnpadRules.UNPAD)) fuseMergeUnpad(p);
      }
    }

    private static final long[] HEAD_SPLIT = {0, 2, 1, 3};
    private static final long[] HEAD_SPLIT_TRANSPOSED = {0, 2, 3, 1};

    private void fusePadSplit(Node pad) {
      Value padded = pad.output();
      Node reshape = onlyReaderBesideShapes(padded);
      if (reshape == null || !reshape.is("Reshape") || !reshape.domain().isEmpty() || reshape.input(0) != padded) return;
      Node transpose = reshape.output().soleReader().orElse(null);
      if (transpose == null || !transpose.is("Transpose") || !transpose.domain().isEmpty()) return;
      long[] perm = transpose.attrLongs("perm").orElse(null);
      boolean keyLike = Arrays.equals(perm, HEAD_SPLIT_TRANSPOSED);
      if (!keyLike && !Arrays.equals(perm, HEAD_SPLIT)) return;
      long[] hd = heads(reshape.output(), padded);
      if (hd == null) return;
      GraphBuilder b = GraphBuilder.on(g).before(transpose).prefix("/graft/pad");
      Value heads = b.opIn(UnpadRules.DOMAIN, UnpadRules.PAD_HEADS, headInputs(pad.input(0), hd));
      heads.setType(Type.tensor(padded.dataType().get(), Shape.of(batch, Dim.of(hd[0]), seq, Dim.of(hd[1]))));
      Value out = keyLike ? b.op("Transpose", List.of(heads), Attr.ints("perm", 0, 1, 3, 2)) : heads;
      List<Value> inputs = new ArrayList<>(pad.inputs());
      inputs.add(reshape.input(1));
      readShapesElsewhere(padded);
      g.replaceValue(transpose.output(), out, List.of(transpose, reshape, pad));
      g.removeUnread(inputs); // the split's target shape; the pad's shapes if no other pad reads them
    }

    private void fuseMergeUnpad(Node unpad) {
      Value merged = unpad.input(0);
      if (onlyReaderBesideShapes(merged) != unpad) return;
      Node reshape = merged.producer().orElse(null);
      if (reshape == null || !reshape.is("Reshape") || !reshape.domain().isEmpty()) return;
      Value split = reshape.input(0);
      Node transpose = split.producer().orElse(null);
      if (onlyReaderBesideShapes(split) != reshape || transpose == null || !transpose.is("Transpose") || !transpose.domain().isEmpty()) return;
      if (!Arrays.equals(transpose.attrLongs("perm").orElse(null), HEAD_SPLIT)) return;
      long[] hd = heads(split, merged);
      if (hd == null) return;
      GraphBuilder b = GraphBuilder.on(g).before(unpad).prefix("/graft/unpad");
      Value u = b.opIn(UnpadRules.DOMAIN, UnpadRules.UNPAD_HEADS, headInputs(transpose.input(0), hd));
      List<Value> inputs = new ArrayList<>(unpad.inputs());
      inputs.add(reshape.input(1));
      readShapesElsewhere(merged);
      readShapesElsewhere(split);
      g.replaceValue(unpad.output(), u, List.of(unpad, reshape, transpose));
      g.removeUnread(inputs); // the merge's target shape; the unpad's shapes if no other unpad reads them
    }

    /**
     * The one node other than {@code Shape} nodes that reads {@code v} (once), when {@code v} is not
     * a graph output: exporters compute a head split's target shape from {@code Shape(x)}.
     */
    private static Node onlyReaderBesideShapes(Value v) {
      if (v.isGraphOutput()) return null;
      Node only = null;
      for (var use : v.uses()) {
        Node n = use.node();
        if (plainShape(n)) continue;
        if (only != null) return null;
        only = n;
      }
      return only;
    }

    private static boolean plainShape(Node n) {
      return n.is("Shape") && n.domain().isEmpty() && n.attributes().isEmpty();
    }

    /**
     * Makes the {@code Shape} nodes that read token-major {@code v} [batch, seq, rest...] read the
     * same dims from the mask's shape instead, so that {@code v} itself need not exist.
     */
    private void readShapesElsewhere(Value v) {
      if (v.uses().stream().noneMatch(use -> plainShape(use.node()))) return;
      Value dims = tokenMajorShape(rest(v));
      for (var use : List.copyOf(v.uses())) {
        Node n = use.node();
        if (!plainShape(n)) continue;
        n.output().replaceAllUsesWith(dims, true);
        g.removeNode(n);
      }
    }

    /**
     * {h, d} when {@code split} is [batch, seq, h, d] and {@code flat} [batch, seq, h*d], both with
     * the mask's batch and sequence dims; else null.
     */
    private long[] heads(Value split, Value flat) {
      Shape s = split.shape().orElse(null);
      Shape f = flat.shape().orElse(null);
      if (s == null || f == null || s.rank() != 4 || f.rank() != 3 || !tokenMajor(flat) || !tokenMajor(split)) return null;
      long h = s.dim(2).value();
      long d = s.dim(3).value();
      return h * d == f.dim(2).value() ? new long[] {h, d} : null;
    }

    /** A head split's size: h heads of width d. */
    private record HeadSize(long h, long d) {}

    /** The inputs of the head placeholders ({@link UnpadRules}): the value, the indices, three shapes. */
    private List<Value> headInputs(Value v, long[] hd) {
      HeadSize key = new HeadSize(hd[0], hd[1]);
      List<Value> in = headInputsBySize.get(key);
      if (in == null) {
        GraphBuilder b = shapeOps("/graft/unpad/heads");
        long h = hd[0];
        long d = hd[1];
        Value flatIdx = b.op("Reshape", idx, b.int64s(-1));
        List<Value> index = headIndex(b, flatIdx, b.op("Slice", maskShape, b.int64s(0), b.int64s(1)), h, d);
        in = List.of(index.get(0), index.get(1), b.int64s(-1, h, d), b.int64s(1, -1, h * d));
        headInputsBySize.put(key, in);
      }
      List<Value> all = new ArrayList<>();
      all.add(v);
      all.addAll(in);
      return all;
    }

    // ---- packed attention rows ---------------------------------------------------------------

    private static final Set<String> ATTENTION_OPS = ImmutableSet.of("MatMul", "Transpose", "Softmax", "Mul", "Div", "Add");

    /**
     * Packs the attention's rows: the head placeholders place each real token at the position
     * {@value #PACKING} gives (short rows side by side in one row of {@code seq} positions), so
     * that the attention's products, mask, softmax and their gradients run over fewer rows (about
     * 15% fewer on SpamAssassin batches at 128 tokens, where most rows are full). Each score's
     * additive key mask [batch, 1, 1, seq] becomes a block-diagonal one [rows, 1, seq, seq]: a
     * token attends to the keys of its own batch row, with the model's own mask value for each,
     * and to nothing else. Done only when every reader of the heads is such an attention
     * (products of heads, a last-two-axes transpose, scalar scales, the masked softmax, the head
     * merge), so that nothing else sees the packed layout; returns whether it was done.
     */
    private boolean packAttention() {
      List<Node> heads = new ArrayList<>();
      Set<Value> packedValues = Collections.newSetFromMap(new IdentityHashMap<>());
      ArrayDeque<Value> work = new ArrayDeque<>();
      for (Node n : g.nodes()) {
        if (!UnpadRules.DOMAIN.equals(n.domain())) continue;
        if (n.opType().equals(UnpadRules.PAD_HEADS)) {
          heads.add(n);
          packedValues.add(n.output());
          work.add(n.output());
        } else if (n.opType().equals(UnpadRules.UNPAD_HEADS)) {
          heads.add(n);
        }
      }
      if (work.isEmpty()) return false;
      Set<Node> readers = Collections.newSetFromMap(new IdentityHashMap<>());
      while (!work.isEmpty()) {
        Value v = work.pop();
        if (v.isGraphOutput() || !sameDim(v, 0, batch)) return false;
        for (Use use : v.uses()) {
          Node n = use.node();
          if (!readers.add(n)) continue;
          if (isPlaceholder(n, UnpadRules.UNPAD_HEADS)) {
            if (use.index() != 0) return false;
            continue;
          }
          if (!n.domain().isEmpty() || !ATTENTION_OPS.contains(n.opType()) || n.outputs().size() != 1) return false;
          if (packedValues.add(n.output())) work.add(n.output());
        }
      }
      Map<Value, Node> biases = new LinkedHashMap<>(); // each key mask and its first Add, in graph order
      List<Node> softmaxes = new ArrayList<>();
      for (Node n : TopologicalOrder.of(g)) {
        if (!readers.contains(n) || isPlaceholder(n, UnpadRules.UNPAD_HEADS)) continue;
        int inHeads = 0;
        for (Value in : n.inputs()) if (packedValues.contains(in)) inHeads++;
        boolean ok =
            switch (n.opType()) {
              case "MatMul" -> inHeads == 2;
              case "Transpose" -> Arrays.equals(n.attrLongs("perm").orElse(null), new long[] {0, 1, 3, 2});
              case "Softmax" -> softmaxes.add(n) && lastAxis(n);
              case "Mul" -> inHeads == 1 && n.inputCount() == 2
                  && scalarConstant(n.input(packedValues.contains(n.input(0)) ? 1 : 0));
              case "Div" -> inHeads == 1 && packedValues.contains(n.input(0)) && scalarConstant(n.input(1));
              case "Add" -> inHeads == 1 && n.inputCount() == 2
                  && keyMask(n.input(packedValues.contains(n.input(0)) ? 1 : 0), biases, n);
              default -> false;
            };
        if (!ok) return false;
      }
      for (Node s : softmaxes) if (!masked(s.input(0), packedValues, biases)) return false;
      for (Node n : heads) if (isPlaceholder(n, UnpadRules.UNPAD_HEADS) && !packedValues.contains(n.input(0))) return false;

      // Where each token goes: rows * seq + position, and how many rows.
      GraphBuilder b = shapeOps("/graft/pack");
      Value plan = g.addInput(PACKING, Type.tensor(DataType.INT64, Shape.of(batch, seq)));
      Value flatIdx = b.op("Reshape", idx, b.int64s(-1));
      Value dest = b.op("Gather", List.of(b.op("Reshape", plan, b.int64s(-1)), flatIdx), Attr.of("axis", 0L));
      Value seqLen = b.op("Slice", maskShape, b.int64s(1), b.int64s(2));
      Value last = b.op("ReduceMax", List.of(b.op("Concat", List.of(dest, b.int64s(0)), Attr.of("axis", 0L))), Attr.of("keepdims", 1L));
      Value rows = b.op("Add", b.op("Div", last, seqLen), b.int64s(1));
      Map<Value, List<Value>> renewed = new IdentityHashMap<>(); // a size's idxHeads -> its packed idxHeads, shape
      List<Value> stale = new ArrayList<>();
      for (Map.Entry<HeadSize, List<Value>> e : headInputsBySize.entrySet()) {
        renewed.put(e.getValue().get(0), headIndex(b, dest, rows, e.getKey().h(), e.getKey().d()));
        stale.addAll(e.getValue().subList(0, 2));
      }
      for (Node n : heads) {
        List<Value> packed = renewed.get(n.input(1));
        n.setInput(1, packed.get(0));
        n.setInput(2, packed.get(1));
      }
      for (Value v : packedValues) {
        List<Dim> dims = new ArrayList<>(v.shape().get().dims());
        dims.set(0, Dim.of(PACKED_ROWS));
        v.setType(Type.tensor(v.dataType().get(), Shape.of(dims)));
      }

      // The block-diagonal masks: a token's batch row at each packed position, -1 where none.
      Value size = b.op("Mul", rows, seqLen);
      Value dest2 = b.op("Unsqueeze", dest, b.int64s(1));
      Value rowOfToken = b.op("Div", flatIdx, seqLen);
      Value segments = b.op("Reshape", b.op("ScatterND", b.op("Expand", b.scalar(-1L), size), dest2, rowOfToken),
          b.op("Concat", List.of(rows, seqLen), Attr.of("axis", 0L)));
      Value sameRow = b.op("Equal", b.op("Unsqueeze", segments, b.int64s(2)), b.op("Unsqueeze", segments, b.int64s(1)));
      for (Map.Entry<Value, Node> e : biases.entrySet()) {
        Value mask = e.getKey();
        GraphBuilder at = GraphBuilder.on(g).before(e.getValue()).prefix("/graft/pack");
        Value lowest = at.scalar(-Float.MAX_VALUE);
        Value perToken = at.op("Gather", List.of(at.op("Reshape", mask, at.int64s(-1)), flatIdx), Attr.of("axis", 0L));
        Value keys = at.op("Reshape", at.op("ScatterND", at.op("Expand", lowest, size), dest2, perToken),
            at.op("Concat", List.of(rows, at.int64s(1), seqLen), Attr.of("axis", 0L)));
        Value packedMask = at.op("Unsqueeze", at.op("Where", sameRow, keys, lowest), at.int64s(1));
        packedMask.setType(Type.tensor(DataType.FLOAT, Shape.of(Dim.of(PACKED_ROWS), Dim.of(1), seq, seq)));
        for (Use use : List.copyOf(mask.uses())) {
          if (readers.contains(use.node()) && use.node().is("Add")) use.node().setInput(use.index(), packedMask);
        }
      }
      g.removeUnread(stale); // last: the builders above insert next to these
      return true;
    }

    private static boolean isPlaceholder(Node n, String op) {
      return UnpadRules.DOMAIN.equals(n.domain()) && n.opType().equals(op);
    }

    private static boolean sameDim(Value v, int axis, Dim want) {
      Shape s = v.shape().orElse(null);
      return s != null && s.rank() == 4 && same(s.dim(axis), want);
    }

    private static boolean lastAxis(Node softmax) {
      long axis = softmax.attrLong("axis", -1);
      return axis == -1 || axis == 3;
    }

    private static boolean scalarConstant(Value v) {
      return Constants.valueOf(v).map(t -> t.numElements() == 1).orElse(false);
    }

    /** Whether {@code v} is a float key mask [batch, 1, 1, seq]; if so, noted with the Add that reads it. */
    private boolean keyMask(Value v, Map<Value, Node> biases, Node add) {
      Shape s = v.shape().orElse(null);
      if (v.dataType().orElse(null) != DataType.FLOAT || s == null || s.rank() != 4) return false;
      if (!same(s.dim(0), batch) || !one(s.dim(1)) || !one(s.dim(2)) || !same(s.dim(3), seq)) return false;
      biases.putIfAbsent(v, add);
      return true;
    }

    private static boolean one(Dim d) {
      return d.isFixed() && d.value() == 1;
    }

    /** Whether softmax input {@code x} is a key-masked score, scaled or not after the mask. */
    private static boolean masked(Value x, Set<Value> packedValues, Map<Value, Node> biases) {
      for (Node p = x.producer().orElse(null); p != null && packedValues.contains(p.output()); ) {
        if (p.is("Add")) return biases.containsKey(p.input(0)) || biases.containsKey(p.input(1));
        if (!p.is("Mul") && !p.is("Div")) return false;
        Value in = packedValues.contains(p.input(0)) ? p.input(0) : p.input(1);
        p = in.producer().orElse(null);
      }
      return false;
    }

    /**
     * idxHeads [tokens, h, 3], the (row, head, position) of every token's every head slice, and the
     * heads' shape [rows, h, seq, d], for tokens at {@code flat} = row * seq + position.
     */
    private List<Value> headIndex(GraphBuilder b, Value flat, Value rowCount, long h, long d) {
      Value seqLen = b.op("Slice", maskShape, b.int64s(1), b.int64s(2));
      Value rowsOf = b.op("Unsqueeze", b.op("Div", flat, seqLen), b.int64s(1, 2));
      Value positions = b.op("Unsqueeze", b.op("Mod", flat, seqLen), b.int64s(1, 2));
      long[] headIds = new long[(int) h];
      for (int i = 0; i < h; i++) headIds[i] = i;
      Value headsCol = b.op("Reshape", b.int64s(headIds), b.int64s(1, h, 1));
      Value target = b.op("Concat", List.of(b.op("Shape", flat), b.int64s(h, 1)), Attr.of("axis", 0L));
      Value idxHeads = b.op("Concat", List.of(
              b.op("Expand", rowsOf, target), b.op("Expand", headsCol, target), b.op("Expand", positions, target)),
          Attr.of("axis", 2L));
      idxHeads.setType(Type.tensor(DataType.INT64, Shape.of(Dim.of(TOKENS), Dim.of(h), Dim.of(3))));
      Value shape = b.op("Concat", List.of(rowCount, b.int64s(h), seqLen, b.int64s(d)), Attr.of("axis", 0L));
      return List.of(idxHeads, shape);
    }

    // ---- which nodes move -------------------------------------------------------------------

    /**
     * [batch, seq, fixed...] with the mask's batch and sequence dims, at least one feature axis
     * ([batch, seq] alone has none: a MatMul or softmax over its last axis mixes positions) and a
     * known element type.
     */
    private boolean tokenMajor(Value v) {
      if (v == null || v.dataType().isEmpty()) return false;
      Shape s = v.shape().orElse(null);
      if (s == null || s.rank() < 3 || !same(s.dim(0), batch) || !same(s.dim(1), seq)) return false;
      for (int i = 2; i < s.rank(); i++) if (!s.dim(i).isFixed()) return false;
      return true;
    }

    /** Known not to vary along batch and sequence when broadcast against a token-major value. */
    private static boolean rowInvariant(Value v, int rank) {
      Shape s = v.shape().orElse(null);
      if (s == null || s.rank() > rank) return false;
      int lead = rank - s.rank();
      for (int axis = 0; axis < 2; axis++) {
        int i = axis - lead;
        if (i >= 0 && !(s.dim(i).isFixed() && s.dim(i).value() == 1)) return false;
      }
      return true;
    }

    private boolean rowWise(Node n) {
      if (n.outputs().isEmpty() || n.inputs().isEmpty()) return false;
      for (Value o : n.outputs()) if (o != null && !tokenMajor(o)) return false;
      int rank = n.output(0).shape().get().rank();
      String op = n.opType();
      if (!n.domain().isEmpty() && !n.domain().equals("com.microsoft")) return false;
      if (op.equals("MatMul")) {
        Value w = n.input(1);
        return tokenMajor(n.input(0)) && !tokenMajor(w) && w.shape().map(s -> s.rank() == 2).orElse(false);
      }
      if (BINARY.contains(op) || (UNARY.contains(op) && n.inputCount() == 1)) return operandsRowWise(n, rank);
      if (ROW_NORMS.contains(op)) {
        long axis = n.attrLong("axis", -1);
        if (axis < 0) axis += rank;
        return axis >= 2 && operandsRowWise(n, rank);
      }
      if (LAST_AXIS_REDUCTIONS.contains(op) || op.equals("Softmax") || op.equals("LogSoftmax")) {
        return lastAxisOnly(n, rank) && tokenMajor(n.input(0));
      }
      return false;
    }

    /** Each input token-major (with the output's rank) or invariant along batch and sequence. */
    private boolean operandsRowWise(Node n, int rank) {
      boolean any = false;
      for (Value in : n.inputs()) {
        if (in == null) continue;
        if (tokenMajor(in)) {
          if (in.shape().get().rank() != rank) return false;
          any = true;
        } else if (!rowInvariant(in, rank)) {
          return false;
        }
      }
      return any;
    }

    private static boolean lastAxisOnly(Node n, int rank) {
      if (n.is("Softmax") || n.is("LogSoftmax")) {
        long axis = n.attrLong("axis", -1);
        return axis == -1 || axis == rank - 1;
      }
      if (n.attrLong("keepdims", 1) != 1) return false;
      Optional<long[]> axes = n.attrLongs("axes");
      if (axes.isEmpty() && n.inputCount() > 1 && n.input(1) != null) {
        axes = Constants.valueOf(n.input(1)).map(Tensor::toLongArray);
      } else if (n.inputCount() > 1 && n.input(1) != null) {
        return false;
      }
      if (axes.isEmpty()) return false;
      for (long a : axes.get()) if (a != -1 && a != rank - 1) return false;
      return axes.get().length > 0;
    }

    // ---- the gathers and scatters -----------------------------------------------------------

    private void indices(Node first) {
      GraphBuilder b = GraphBuilder.on(g).before(first).prefix("/graft/unpad");
      Value tokens = g.addInput(TOKEN_MASK, mask.type().get());
      Value flatMask = b.op("Reshape", tokens, b.int64s(-1));
      idx = b.op("NonZero", flatMask);
      idx.setType(Type.tensor(DataType.INT64, Shape.of(Dim.of(1), Dim.of(TOKENS))));
      idx3 = b.op("Unsqueeze", idx, b.int64s(2));
      idx3.setType(Type.tensor(DataType.INT64, Shape.of(Dim.of(1), Dim.of(TOKENS), Dim.of(1))));
      maskShape = b.op("Shape", tokens);
      flatCount = b.op("ReduceProd", List.of(maskShape), Attr.of("keepdims", 1L));
    }

    private Value unpad(GraphBuilder b, Value x) {
      Value done = unpadded.get(x);
      if (done != null) return done;
      Value u = b.opIn(UnpadRules.DOMAIN, UnpadRules.UNPAD, placeholderInputs(x, rest(x)));
      u.setType(unpaddedType(x));
      unpadded.put(x, u);
      unpads++;
      return u;
    }

    private Value pad(GraphBuilder b, Value u, Value like) {
      pads++;
      return b.opIn(UnpadRules.DOMAIN, UnpadRules.PAD, placeholderInputs(u, rest(like)));
    }

    /** The inputs {@link UnpadRules} describes: the value, the indices, the three shapes. */
    private List<Value> placeholderInputs(Value v, long[] rest) {
      String key = Arrays.toString(rest);
      List<Value> shapes = shapesByRest.get(key);
      if (shapes == null) {
        GraphBuilder b = shapeOps("/graft/pad");
        long[] flat = new long[rest.length + 1];
        flat[0] = -1;
        System.arraycopy(rest, 0, flat, 1, rest.length);
        shapes = List.of(
            b.op("Concat", List.of(flatCount, b.int64s(rest)), Attr.of("axis", 0L)),
            tokenMajorShape(rest),
            b.int64s(flat));
        shapesByRest.put(key, shapes);
      }
      return List.of(v, idx, idx3, shapes.get(0), shapes.get(1), shapes.get(2));
    }

    /** [batch, seq, rest...]: the mask's shape and {@code rest}, made once per rest. */
    private Value tokenMajorShape(long[] rest) {
      return shapeOfRest.computeIfAbsent(Arrays.toString(rest), k -> {
        GraphBuilder b = shapeOps("/graft/pad");
        return b.op("Concat", List.of(maskShape, b.int64s(rest)), Attr.of("axis", 0L));
      });
    }

    /** A builder of ops that every step computes once from the token mask, placed after its statistics. */
    private GraphBuilder shapeOps(String prefix) {
      return GraphBuilder.on(g).before(g.nodeAfter(flatCount.producer().get()).orElseThrow()).prefix(prefix);
    }

    private static long[] rest(Value v) {
      Shape s = v.shape().get();
      long[] r = new long[s.rank() - 2];
      for (int i = 2; i < s.rank(); i++) r[i - 2] = s.dim(i).value();
      return r;
    }

    private static Type unpaddedType(Value like) {
      Shape s = like.shape().get();
      List<Dim> dims = new ArrayList<>();
      dims.add(Dim.of(1));
      dims.add(Dim.of(TOKENS));
      for (int i = 2; i < s.rank(); i++) dims.add(s.dim(i));
      return Type.tensor(like.dataType().get(), Shape.of(dims));
    }

    private static int find(int[] parent, int i) {
      while (parent[i] != i) i = parent[i] = parent[parent[i]];
      return i;
    }

    private static void union(int[] parent, int a, int b) {
      parent[find(parent, a)] = find(parent, b);
    }
  }
}
