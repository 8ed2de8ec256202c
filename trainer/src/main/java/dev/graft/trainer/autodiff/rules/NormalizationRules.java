package dev.graft.trainer.autodiff.rules;

import static dev.graft.trainer.autodiff.GradBuilder.grads;
import static dev.graft.trainer.autodiff.GradBuilder.none;
import static dev.graft.trainer.autodiff.GradBuilder.some;

import dev.graft.ir.DataType;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.trainer.autodiff.GradBuilder;
import java.util.List;
import java.util.Optional;

/**
 * Gradients of LayerNormalization and inference-mode BatchNormalization. LayerNormalization's
 * statistics come from its optional Mean and InvStdDev outputs when the node has them (the driver
 * gives float32 nodes on the gradient path those outputs, see {@code SavedStatistics}), else they
 * are recomputed from X.
 *
 * <pre>
 *   xhat = (x - mean) * rstd,  y = xhat * scale + bias     (over axes [axis, rank))
 *   dscale = unb(g * xhat)    dbias = unb(g)
 *   dx = rstd * (gh - mean(gh) - xhat * mean(gh * xhat)),  gh = g * scale
 * </pre>
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
    Value xhat = b.mul(xc, rstd);

    Optional<Value> dx = none();
    if (b.needs(0)) {
      Value gh = b.mul(gy, scale);
      Value m1 = b.div(b.reduceSum(gh, axes, true), count);
      Value m2 = b.div(b.reduceSum(b.mul(gh, xhat), axes, true), count);
      dx = some(b.typedLike(b.mul(rstd, b.sub(b.sub(gh, m1), b.mul(xhat, m2))), x));
    }
    Optional<Value> dscale = b.needs(1) ? some(b.unbroadcast(b.mul(gy, xhat), y, scale)) : none();
    Optional<Value> dbias = bias != null && b.needs(2) ? some(b.unbroadcast(gy, y, bias)) : none();
    return bias == null ? grads(dx, dscale) : grads(dx, dscale, dbias);
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
