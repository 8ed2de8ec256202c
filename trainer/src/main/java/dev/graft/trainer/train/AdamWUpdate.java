package dev.graft.trainer.train;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalDouble;

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
 */
final class AdamWUpdate {
  /** What a parameter needs: its value (a graph input), its gradient, and whether it decays. */
  record Slot(Value param, Value grad, boolean decay) {}

  /** The new values, in slot order, and the pre-clipping gradient norm. */
  record Result(Value gradNorm, ImmutableList<Value> params, ImmutableList<Value> m, ImmutableList<Value> v) {}

  private AdamWUpdate() {}

  static Result append(
      GraphBuilder b, AdamW hp, List<Slot> slots, Value step, Value lr, OptionalDouble maxNorm) {
    String prefix = b.prefix();
    b.prefix("/graft/clip");
    List<Value> squares = new ArrayList<>();
    for (Slot s : slots) {
      squares.add(b.op("ReduceSum", List.of(b.op("Mul", s.grad(), s.grad())), Attr.of("keepdims", 0L)));
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

    ImmutableList.Builder<Value> ps = ImmutableList.builder();
    ImmutableList.Builder<Value> ms = ImmutableList.builder();
    ImmutableList.Builder<Value> vs = ImmutableList.builder();
    for (Slot s : slots) {
      Value p = s.param();
      Type type = p.type().orElse(null);
      Value m = b.graph().addInput(StateNames.m(p.name()), type);
      Value v = b.graph().addInput(StateNames.v(p.name()), type);
      Value g = scale == null ? s.grad() : b.op("Mul", s.grad(), scale);
      Value m2 = b.op("Add", b.op("Mul", m, beta1), b.op("Mul", g, oneMinusBeta1));
      Value v2 = b.op("Add", b.op("Mul", v, beta2), b.op("Mul", b.op("Mul", g, g), oneMinusBeta2));
      Value denom = b.op("Add", b.op("Div", b.op("Sqrt", v2), sqrtBc2), eps);
      Value delta = b.op("Mul", stepSize, b.op("Div", m2, denom));
      Value decayed = s.decay() && decayFactor != null ? b.op("Mul", p, decayFactor) : p;
      ps.add(b.op("Sub", decayed, delta));
      ms.add(m2);
      vs.add(v2);
    }
    b.prefix(prefix);
    return new Result(norm, ps.build(), ms.build(), vs.build());
  }
}
