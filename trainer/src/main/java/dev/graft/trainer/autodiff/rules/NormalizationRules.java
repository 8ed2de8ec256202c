package dev.graft.trainer.autodiff.rules;

import static dev.graft.trainer.autodiff.GradBuilder.grads;
import static dev.graft.trainer.autodiff.GradBuilder.none;
import static dev.graft.trainer.autodiff.GradBuilder.some;

import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.trainer.autodiff.GradBuilder;
import java.util.List;
import java.util.Optional;

/**
 * Gradients of LayerNormalization, com.microsoft SkipLayerNormalization (the training copy's fusion
 * of a residual Add and a LayerNorm) and inference-mode BatchNormalization. LayerNormalization's
 * statistics come from its optional Mean and InvStdDev outputs when the node has them (the driver
 * gives float32 nodes on the gradient path those outputs, see {@code SavedStatistics}), else they
 * are recomputed from X.
 *
 * <pre>
 *   xhat = (x - mean) * rstd,  y = xhat * scale + bias     (over axes [axis, rank))
 *   dscale = unb(g * xhat)    dbias = unb(g)
 *   dx = rstd * (gh - mean(gh) - xhat * mean(gh * xhat)),  gh = g * scale
 * </pre>
 *
 * written so that xhat is formed only for dscale (see {@code inputGradient}).
 */
public final class NormalizationRules {
  private NormalizationRules() {}

  public static List<Optional<Value>> layerNormalization(GradBuilder b, Node n, List<Value> g) {
    Value x = n.input(0);
    Value scale = n.input(1);
    Value bias = n.input(2);
    Value y = n.output();
    Value gy = g.get(0);
    if (gy == null) {
      throw b.fail("only the first output (Y) can carry a gradient; Mean and InvStdDev cannot.");
    }
    int r = b.rank(x, "LayerNormalization normalizes over the axes from 'axis' to the last");
    long[] axes = GradBuilder.axesFrom(GradBuilder.axis(n.attrLong("axis", -1), r), r);
    Value count = b.countOf(x, axes, x);
    Value mean;
    Value xc;
    Value rstd;
    Value savedMean = n.outputs().size() > 2 ? n.output(1) : null;
    Value savedInvStd = n.outputs().size() > 2 ? n.output(2) : null;
    if (savedMean != null && savedInvStd != null) {
      // Shaped like X with the normalised axes kept as 1, in the stash type.
      mean = sameType(b, savedMean, x);
      xc = b.sub(x, mean);
      rstd = sameType(b, savedInvStd, x);
    } else {
      mean = b.div(b.reduceSum(x, axes, true), count);
      xc = b.sub(x, mean);
      Value var = b.div(b.reduceSum(b.mul(xc, xc), axes, true), count);
      Value eps = b.scalar(n.attrFloat("epsilon", 1e-5f), x);
      rstd = b.div(b.scalar(1.0, x), b.op("Sqrt", b.add(var, eps)));
    }
    Optional<Value> dx = none();
    if (b.needs(0)) dx = some(b.typedLike(inputGradient(b, gy, scale, xc, rstd, axes, count), x));
    Optional<Value> dscale = b.needs(1) ? some(b.unbroadcast(b.mul(gy, b.mul(xc, rstd)), y, scale)) : none();
    Optional<Value> dbias = bias != null && b.needs(2) ? some(b.unbroadcast(gy, y, bias)) : none();
    return bias == null ? grads(dx, dscale) : grads(dx, dscale, dbias);
  }

  /**
   * The LayerNorm input gradient from the centred input {@code xc} and the inverse deviation, in
   * four passes over x's size after {@code gh} and {@code gh * xc} (xhat itself is never formed):
   *
   * <pre>
   *   dx = rstd * (gh - mean(gh) - xhat * mean(gh * xhat))
   *      = rstd * ((gh - mean(gh)) - xc * (rstd^2 * mean(gh * xc)))      gh = g * scale
   * </pre>
   */
  private static Value inputGradient(GradBuilder b, Value gy, Value scale, Value xc, Value rstd, long[] axes, Value count) {
    Value gh = b.mul(gy, scale);
    Value m1 = b.div(b.reduceSum(gh, axes, true), count);
    Value m2 = b.div(b.reduceSum(b.mul(gh, xc), axes, true), count);
    Value k = b.mul(b.mul(rstd, rstd), m2);
    return b.mul(b.sub(b.sub(gh, m1), b.mul(xc, k)), rstd);
  }

  /**
   * com.microsoft SkipLayerNormalization, which {@code SkipLayerNormFusion} makes of a residual
   * Add (and a bias Add) and a LayerNormalization in the training copy:
   *
   * <pre>
   *   s = input + skip (+ bias);  y = LayerNorm(s) * gamma + beta   over the last axis
   *   ds = LayerNorm's dx (+ the gradient of the sum output s, when it has uses)
   *   dinput = ds   dskip = unb(ds)   dbias = unb(ds)   dgamma = unb(g * xhat)   dbeta = unb(g)
   * </pre>
   *
   * ORT's CPU kernel does not write the optional mean and inverse-deviation outputs, so the rule
   * recomputes them from the sum, which the fused node exposes as its fourth output (else it is
   * recomputed too): two reductions over the rows (one a ReduceSumSquare of the centred sum) and
   * the centring, which the input gradient needs anyway.
   */
  public static List<Optional<Value>> skipLayerNormalization(GradBuilder b, Node n, List<Value> g) {
    for (int i = 1; i <= 2; i++) {
      if (g.size() > i && g.get(i) != null) {
        throw b.fail("output " + i + " (mean or inv_std_var) cannot carry a gradient: ORT's CPU kernel does not write it.");
      }
    }
    Value input = n.input(0);
    Value skip = n.input(1);
    Value gamma = n.input(2);
    Value beta = n.inputCount() > 3 ? n.input(3) : null;
    Value bias = n.inputCount() > 4 ? n.input(4) : null;
    Value y = n.output();
    Value gy = g.get(0);
    Value gs = g.size() > 3 ? g.get(3) : null;
    int r = b.rank(input, "SkipLayerNormalization normalizes over the last axis");
    long[] axes = {r - 1};
    Value s = n.outputs().size() > 3 && n.output(3) != null ? n.output(3) : null;
    if (s == null) {
      s = b.typedLike(b.add(input, skip), input);
      if (bias != null) s = b.typedLike(b.add(s, bias), input);
    }
    Value count = b.countOf(s, axes, s);
    Value xc = b.sub(s, b.div(b.reduceSum(s, axes, true), count));
    Value var = b.div(sumOfSquares(b, xc, axes), count);
    Value eps = b.scalar(n.attrFloat("epsilon", 1e-5f), s);
    Value rstd = b.div(b.scalar(1.0, s), b.op("Sqrt", b.add(var, eps)));

    boolean needsSum = needs(b, n, 0) || needs(b, n, 1) || needs(b, n, 4);
    Value ds = gs;
    if (needsSum && gy != null) {
      Value dn = inputGradient(b, gy, gamma, xc, rstd, axes, count);
      ds = ds == null ? dn : b.add(ds, dn);
    }
    if (ds != null) b.typedLike(ds, input);
    Optional<Value> dinput = needs(b, n, 0) ? some(b.unbroadcast(ds, s, input)) : none();
    Optional<Value> dskip = needs(b, n, 1) ? some(b.unbroadcast(ds, s, skip)) : none();
    Optional<Value> dgamma =
        needs(b, n, 2) && gy != null ? some(b.unbroadcast(b.mul(gy, b.mul(xc, rstd)), y, gamma)) : none();
    Optional<Value> dbeta = needs(b, n, 3) && gy != null ? some(b.unbroadcast(gy, y, beta)) : none();
    Optional<Value> dbias = needs(b, n, 4) ? some(b.unbroadcast(ds, s, bias)) : none();
    if (n.inputCount() > 4) return grads(dinput, dskip, dgamma, dbeta, dbias);
    if (n.inputCount() > 3) return grads(dinput, dskip, dgamma, dbeta);
    return grads(dinput, dskip, dgamma);
  }

  /** ReduceSumSquare over {@code axes}, kept: no pass that writes xc * xc. */
  private static Value sumOfSquares(GradBuilder b, Value v, long[] axes) {
    // ReduceSumSquare took its axes as an attribute up to opset 17, as an input from 18.
    if (b.opset() < 18) return b.op("ReduceSumSquare", List.of(v), Attr.ints("axes", axes), Attr.of("keepdims", 1L));
    return b.op("ReduceSumSquare", List.of(v, b.ints(axes)), Attr.of("keepdims", 1L));
  }

  private static boolean needs(GradBuilder b, Node n, int i) {
    return i < n.inputCount() && n.input(i) != null && b.needs(i);
  }

  /** {@code v} in {@code like}'s element type: itself when they agree or are unknown, else a Cast. */
  private static Value sameType(GradBuilder b, Value v, Value like) {
    DataType want = like.dataType().orElse(null);
    DataType have = v.dataType().orElse(null);
    return want == null || want == have ? v : b.cast(v, want);
  }

  /**
   * Inference-mode BatchNormalization over channel axis 1 with the running statistics:
   * y = (x - mean) * scale / sqrt(var + eps) + bias. All five inputs can be differentiated.
   */
  public static List<Optional<Value>> batchNormalization(GradBuilder b, Node n, List<Value> g) {
    if (n.attrLong("training_mode", 0) != 0) {
      throw b.fail(
          "training-mode BatchNormalization (batch statistics) is not supported; set"
              + " training_mode=0 so it normalizes with the running statistics.");
    }
    Value x = n.input(0);
    Value scale = n.input(1);
    Value mean = n.input(3);
    Value var = n.input(4);
    Value gy = g.get(0);
    if (gy == null) throw b.fail("only the first output (Y) can carry a gradient.");
    int r = b.rank(x, "BatchNormalization's channel statistics broadcast over the axes after 1");
    long[] spatial = GradBuilder.axesFrom(1, r - 1);
    long[] reduce = new long[r - 1];
    reduce[0] = 0;
    for (int i = 2; i < r; i++) reduce[i - 1] = i;
    Value eps = b.scalar(n.attrFloat("epsilon", 1e-5f), x);
    Value rstd = b.div(b.scalar(1.0, x), b.op("Sqrt", b.add(var, eps)));
    Value rstdU = perChannel(b, rstd, spatial);
    Value scaleU = perChannel(b, scale, spatial);
    Value xc = b.sub(x, perChannel(b, mean, spatial));

    Optional<Value> dx = b.needs(0) ? some(b.typedLike(b.mul(gy, b.mul(scaleU, rstdU)), x)) : none();
    Optional<Value> dscale =
        b.needs(1) ? some(b.typedLike(b.reduceSum(b.mul(gy, b.mul(xc, rstdU)), reduce, false), scale)) : none();
    Optional<Value> dbias = b.needs(2) ? some(b.typedLike(b.reduceSum(gy, reduce, false), n.input(2))) : none();
    Optional<Value> dmean = none();
    if (b.needs(3)) {
      Value s = b.reduceSum(gy, reduce, false);
      dmean = some(b.typedLike(b.neg(b.mul(s, b.mul(scale, rstd))), mean));
    }
    Optional<Value> dvar = none();
    if (b.needs(4)) {
      Value s = b.reduceSum(b.mul(gy, xc), reduce, false);
      Value r3 = b.mul(rstd, b.mul(rstd, rstd));
      dvar = some(b.typedLike(b.mul(b.mul(s, scale), b.mul(r3, b.scalar(-0.5, x))), var));
    }
    return grads(dx, dscale, dbias, dmean, dvar);
  }

  private static Value perChannel(GradBuilder b, Value v, long[] spatial) {
    return spatial.length == 0 ? v : b.unsqueeze(v, spatial);
  }
}
