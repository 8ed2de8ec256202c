package dev.graft.rewrite.peft;

import static com.google.common.base.Preconditions.checkArgument;

import dev.graft.ir.Attr;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import java.util.List;

/**
 * CoDA's soft top-k (Lei et al. 2023, section 3.3) as standard ONNX ops, its iterations unrolled:
 * the weights λ ∈ [0, 1]^n that solve the entropy-regularised selection
 *
 * <pre>
 *   λ = argmax  s·λ + ε·H(λ)   subject to  Σ_i λ_i = k,  0 ≤ λ_i ≤ 1         (per row of s: [batch, n])
 * </pre>
 *
 * through its dual: λ_i = exp((s_i + a + b_i) / ε), with a scalar a per row and b_i ≤ 0 keeping
 * λ_i ≤ 1. Each iteration renormalises a to make the sum k, then clips with b. Written in units of
 * ε (t = s/ε, u = a/ε, c = b/ε) so that a low temperature cannot overflow:
 *
 * <pre>
 *   c = 0
 *   repeat T times:  u = log k - ReduceLogSumExp(t + c, axis=-1)       [batch, 1]
 *                    c = Min(-t - u, 0)
 *   λ = Exp(t + u + c)                                                 ( = min(exp(t + u), 1) )
 * </pre>
 *
 * λ is monotone in s, so the k largest λ are the hard top-k; as ε → 0 (with enough iterations:
 * each one moves a by about ε·log(k/selected)) λ becomes the 0/1 indicator of the hard top-k, and
 * for larger ε it spreads the weight smoothly, which is what lets the router learn. Positions
 * where {@code valid} is false (padding) get t = -1e9 before the first iteration, so their λ is
 * exactly 0 and they receive no gradient; when a row has fewer valid positions than k, each valid
 * one gets λ = 1.
 *
 * <p>Every op here has a gradient rule (Div, Where, ReduceLogSumExp, Sub, Neg, Min, Add, Exp, Log),
 * so the train-step graph differentiates the iterations as they are, the paper's choice.
 */
public final class CodaSoftTopK {
  private CodaSoftTopK() {}

  /** The value padded positions get, in units of ε: far below anything exp can tell from -inf. */
  static final float MASKED = -1e9f;

  /**
   * Appends the soft top-k of {@code scores} along the last axis.
   *
   * @param scores float [batch, n]
   * @param valid bool [batch, n], false at padding; null when every position is valid
   * @param k the number to select: a float scalar or [batch, 1]
   * @param temperature ε, positive
   * @param iterations T, at least 1
   * @param opset the model's default-domain opset (ReduceLogSumExp takes its axes as an input from 18)
   * @return λ, float [batch, n]
   */
  public static Value build(GraphBuilder b, Value scores, Value valid, Value k, double temperature, int iterations, long opset) {
    checkArgument(temperature > 0, "CoDA's soft top-k needs a positive temperature, got %s", temperature);
    checkArgument(iterations >= 1, "CoDA's soft top-k needs at least one iteration, got %s", iterations);
    Value t = b.op("Div", scores, b.scalar((float) temperature));
    if (valid != null) t = b.op("Where", valid, t, b.scalar(MASKED));
    Value logK = b.op("Log", k);
    Value zero = b.scalar(0f);
    Value negT = b.op("Neg", t);
    Value axes = opset >= 18 ? b.int64s(-1) : null;
    Value c = null;
    Value u = null;
    for (int i = 0; i < iterations; i++) {
      Value shifted = c == null ? t : b.op("Add", t, c);
      Value lse =
          axes != null
              ? b.op("ReduceLogSumExp", List.of(shifted, axes), Attr.of("keepdims", 1L))
              : b.op("ReduceLogSumExp", List.of(shifted), Attr.ints("axes", -1), Attr.of("keepdims", 1L));
      u = b.op("Sub", logK, lse);
      c = b.op("Min", b.op("Sub", negT, u), zero);
    }
    return b.op("Exp", b.op("Add", b.op("Add", t, u), c));
  }
}
