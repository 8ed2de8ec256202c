package dev.graft.trainer.train;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Shape;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.function.IntFunction;

/**
 * Appends optional global-norm clipping and the {@link AdamW} update to a graph that already
 * computes each parameter's gradient, in standard ops; the moments become graph inputs.
 *
 * <pre>
 *   norm  = Sqrt(Sum_i ReduceSum(g_i * g_i))                      (always: reported per step)
 *   g_i   = g_i * Min(1, maxNorm / (norm + 1e-6))                   (only with clipping)
 *   m_i'  = beta1 m_i + (1 - beta1) g_i ;  v_i' = beta2 v_i + (1 - beta2) g_i^2
 *   p_i'  = p_i * (1 - lr wd) - (lr / bc1) * m_i' / (Sqrt(v_i') / Sqrt(bc2) + eps)
 *           bc1 = 1 - beta1^t, bc2 = 1 - beta2^t, t = Cast(step, float)
 * </pre>
 *
 * The step-wide scalars (bias corrections, step size, decay factor) are computed once and shared.
 *
 * <p>Parameters of one shape family (the same trailing dimensions and decay flag: LoRA's A
 * matrices of every layer, say) are updated as one tensor, concatenated along the first axis:
 *
 * <pre>
 *   A_1 .. A_12 (384 x 8), their grads, m, v  =>  Concat -> [4608 x 8] -> the update above -> Split
 * </pre>
 *
 * The update is elementwise, so each element gets the same float operations as alone; only the
 * norm's sum runs in another order. It is the many tiny kernels that cost: with LoRA r = 8 on the
 * queries and values of MiniLM, 26 parameters took 455 nodes (about a third of the train step's
 * nodes, each with ORT's per-node overhead); grouped, 4 groups take 95.
 */
final class AdamWUpdate {
  /** What a parameter needs: its value (a graph input), its gradient, and whether it decays. */
  record Slot(Value param, Value grad, boolean decay) {}

  /** The new values, in slot order, and the pre-clipping gradient norm. */
  record Result(Value gradNorm, ImmutableList<Value> params, ImmutableList<Value> m, ImmutableList<Value> v) {}

  /** {@code -Dgraft.train.adamwGroups=0} updates every parameter alone, for measuring. */
  static final String GROUPS = "graft.train.adamwGroups";

  private AdamWUpdate() {}

  static Result append(
      GraphBuilder b, AdamW hp, List<Slot> slots, Value step, Value lr, OptionalDouble maxNorm) {
    String prefix = b.prefix();
    List<List<Integer>> groups = groups(slots);
    b.prefix("/graft/clip");
    List<Value> groupGrads = new ArrayList<>();
    List<Value> squares = new ArrayList<>();
    for (List<Integer> group : groups) {
      Value g = concat(b, group, i -> slots.get(i).grad());
      groupGrads.add(g);
      squares.add(b.op("ReduceSum", List.of(b.op("Mul", g, g)), Attr.of("keepdims", 0L)));
    }
    Value norm = b.op("Sqrt", b.op("Sum", squares));
    Value scale = null;
    if (maxNorm.isPresent()) {
      Value ratio = b.op("Div", b.scalar((float) maxNorm.getAsDouble()), b.op("Add", norm, b.scalar(1e-6f)));
      scale = b.op("Min", b.scalar(1f), ratio);
    }

    b.prefix("/graft/adamw");
    Value one = b.scalar(1f);
    Value t = b.op("Cast", List.of(step), Attr.of("to", (long) DataType.FLOAT.code()));
    Value bc1 = b.op("Sub", one, b.op("Pow", b.scalar((float) hp.beta1()), t));
    Value bc2 = b.op("Sub", one, b.op("Pow", b.scalar((float) hp.beta2()), t));
    Value stepSize = b.op("Div", lr, bc1);
    Value sqrtBc2 = b.op("Sqrt", bc2);
    Value decayFactor =
        hp.weightDecay() > 0 ? b.op("Sub", one, b.op("Mul", lr, b.scalar((float) hp.weightDecay()))) : null;
    Value beta1 = b.scalar((float) hp.beta1());
    Value beta2 = b.scalar((float) hp.beta2());
    Value oneMinusBeta1 = b.scalar((float) (1 - hp.beta1()));
    Value oneMinusBeta2 = b.scalar((float) (1 - hp.beta2()));
    Value eps = b.scalar((float) hp.epsilon());

    Value[] ps = new Value[slots.size()];
    Value[] ms = new Value[slots.size()];
    Value[] vs = new Value[slots.size()];
    List<Value> mIn = new ArrayList<>();
    List<Value> vIn = new ArrayList<>();
    for (Slot s : slots) {
      Type type = s.param().type().orElse(null);
      mIn.add(b.graph().addInput(StateNames.m(s.param().name()), type));
      vIn.add(b.graph().addInput(StateNames.v(s.param().name()), type));
    }
    for (int k = 0; k < groups.size(); k++) {
      List<Integer> group = groups.get(k);
      Value p = concat(b, group, i -> slots.get(i).param());
      Value m = concat(b, group, mIn::get);
      Value v = concat(b, group, vIn::get);
      Value g = scale == null ? groupGrads.get(k) : b.op("Mul", groupGrads.get(k), scale);
      Value m2 = b.op("Add", b.op("Mul", m, beta1), b.op("Mul", g, oneMinusBeta1));
      Value v2 = b.op("Add", b.op("Mul", v, beta2), b.op("Mul", b.op("Mul", g, g), oneMinusBeta2));
      Value denom = b.op("Add", b.op("Div", b.op("Sqrt", v2), sqrtBc2), eps);
      Value delta = b.op("Mul", stepSize, b.op("Div", m2, denom));
      Value decayed = slots.get(group.get(0)).decay() && decayFactor != null ? b.op("Mul", p, decayFactor) : p;
      Value p2 = b.op("Sub", decayed, delta);
      split(b, group, slots, p2, ps);
      split(b, group, slots, m2, ms);
      split(b, group, slots, v2, vs);
    }
    b.prefix(prefix);
    return new Result(norm, ImmutableList.copyOf(ps), ImmutableList.copyOf(ms), ImmutableList.copyOf(vs));
  }

  /**
   * Slot indices grouped by what lets their tensors be concatenated along the first axis and
   * updated as one: the same rank and trailing dimensions (all static) and the same decay flag.
   * A slot whose shape is not static is a group of its own. Groups keep the slots' order.
   */
  static List<List<Integer>> groups(List<Slot> slots) {
    boolean grouping = !"0".equals(System.getProperty(GROUPS, ""));
    Map<List<Object>, List<Integer>> byKey = new LinkedHashMap<>();
    for (int i = 0; i < slots.size(); i++) {
      Slot s = slots.get(i);
      Optional<long[]> sizes = s.param().shape().flatMap(Shape::sizes);
      List<Object> key = new ArrayList<>();
      if (!grouping || sizes.isEmpty() || sizes.get().length == 0) {
        key.add("alone");
        key.add(i);
      } else {
        long[] d = sizes.get();
        key.add(s.decay());
        for (int a = 1; a < d.length; a++) key.add(d[a]);
        key.add(-(long) d.length);
      }
      byKey.computeIfAbsent(key, k -> new ArrayList<>()).add(i);
    }
    return List.copyOf(byKey.values());
  }

  private static Value concat(GraphBuilder b, List<Integer> group, IntFunction<Value> of) {
    if (group.size() == 1) return of.apply(group.get(0));
    List<Value> parts = new ArrayList<>();
    for (int i : group) parts.add(of.apply(i));
    return b.op("Concat", parts, Attr.of("axis", 0L));
  }

  private static void split(GraphBuilder b, List<Integer> group, List<Slot> slots, Value whole, Value[] into) {
    if (group.size() == 1) {
      into[group.get(0)] = whole;
      return;
    }
    long[] rows = new long[group.size()];
    for (int j = 0; j < rows.length; j++) rows[j] = slots.get(group.get(j)).param().shape().get().staticSizes()[0];
    List<Value> parts = b.ops("Split", rows.length, List.of(whole, b.int64s(rows)), Attr.of("axis", 0L));
    for (int j = 0; j < rows.length; j++) into[group.get(j)] = parts.get(j);
  }
}
