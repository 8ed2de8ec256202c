package dev.graft.trainer.autodiff.rules;

import static dev.graft.trainer.autodiff.GradBuilder.grads;
import static dev.graft.trainer.autodiff.GradBuilder.none;
import static dev.graft.trainer.autodiff.GradBuilder.some;

import dev.graft.ir.Attr;
import dev.graft.ir.Node;
import dev.graft.ir.Shape;
import dev.graft.ir.Value;
import dev.graft.trainer.autodiff.GradBuilder;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;

/**
 * Gradient of Conv (any number of spatial axes, groups, strides, dilations, explicit or automatic
 * padding), in two standard ops:
 *
 * <pre>
 *   Y = Conv(X, W, B)           X [N, C, S...], W [M, C/G, K...], Y [N, M, O...]
 *   dX = ConvTranspose(dY, W)   same strides, dilations, pads, group; output_padding restores S
 *   dW = Conv(X', dY')          X' = X regrouped to [C/G, G*N, S...], dY' = Transpose(dY) [M, N, O...],
 *                               strides and dilations swapped, group G; then [M, C/G, K...]
 *   dB = ReduceSum(dY, all axes but 1)
 * </pre>
 *
 * The input and weight gradients need the static spatial sizes of X and Y (the batch may be
 * symbolic); the rule says which value lacks them.
 */
public final class ConvRules {
  private ConvRules() {}

  public static List<Optional<Value>> conv(GradBuilder b, Node n, List<Value> g) {
    Value x = n.input(0);
    Value w = n.input(1);
    Value bias = n.input(2);
    Value y = n.output();
    Value gy = g.get(0);
    int r = b.rank(x, "Conv's gradient is laid out by the number of spatial axes");
    int sd = r - 2;
    long[] reduce = new long[r - 1];
    for (int i = 2; i < r; i++) reduce[i - 1] = i;
    Optional<Value> db =
        bias != null && b.needs(2) ? some(b.typedLike(b.reduceSum(gy, reduce, false), bias)) : none();
    // Neither x nor W (a scored output h = Conv(x, W) itself): one gradient per input there is.
    if (!b.needs(0) && !b.needs(1)) return bias == null ? grads(none(), none()) : grads(none(), none(), db);

    long groups = n.attrLong("group", 1);
    long[] strides = n.attrLongs("strides").orElse(filled(sd, 1));
    long[] dil = n.attrLongs("dilations").orElse(filled(sd, 1));
    long[] xs = staticDims(b, x, "X");
    long[] ws = staticDims(b, w, "W");
    long[] ys = staticDims(b, y, "Y");
    long[] k = Arrays.copyOfRange(ws, 2, r);
    long[] pads = pads(b, n, xs, k, strides, dil, sd);

    Optional<Value> dx = none();
    if (b.needs(0)) {
      long[] outPad = new long[sd];
      for (int i = 0; i < sd; i++) {
        long produced = strides[i] * (ys[i + 2] - 1) + (k[i] - 1) * dil[i] + 1 - pads[i] - pads[i + sd];
        outPad[i] = xs[i + 2] - produced;
      }
      Value t =
          b.op(
              "ConvTranspose",
              List.of(gy, w),
              Attr.ints("strides", strides),
              Attr.ints("dilations", dil),
              Attr.ints("pads", pads),
              Attr.ints("kernel_shape", k),
              Attr.ints("output_padding", outPad),
              Attr.of("group", groups));
      dx = some(b.typedLike(t, x));
    }
    Optional<Value> dw = none();
    if (b.needs(1)) {
      long cg = xs[1] / groups;
      long[] toFront = new long[r];
      toFront[0] = 1;
      toFront[1] = 0;
      for (int i = 2; i < r; i++) toFront[i] = i;
      Value xt;
      if (groups == 1) {
        xt = b.transpose(x, toFront);
      } else {
        // [N, G*Cg, S] -> [N, G, Cg, S] -> [Cg, G, N, S] -> [Cg, G*N, S]: channel gi*N + n.
        long[] split = new long[r + 1];
        split[0] = -1;
        split[1] = groups;
        split[2] = cg;
        System.arraycopy(xs, 2, split, 3, sd);
        long[] perm = new long[r + 1];
        perm[0] = 2;
        perm[1] = 1;
        perm[2] = 0;
        for (int i = 3; i <= r; i++) perm[i] = i;
        long[] merged = new long[r];
        merged[0] = cg;
        merged[1] = -1;
        System.arraycopy(xs, 2, merged, 2, sd);
        xt = b.reshape(b.transpose(b.reshape(x, b.ints(split)), perm), b.ints(merged));
      }
      Value gt = b.transpose(gy, toFront);
      Value c =
          b.op(
              "Conv",
              List.of(xt, gt),
              Attr.ints("strides", dil),
              Attr.ints("dilations", strides),
              Attr.ints("pads", pads),
              Attr.of("group", groups));
      Value d = b.transpose(c, toFront);
      // The padded input may reach past the last kernel tap (strides that do not divide evenly);
      // those extra positions are not weights.
      boolean trim = false;
      for (int i = 0; i < sd; i++) {
        long got = (xs[i + 2] + pads[i] + pads[i + sd] - ((ys[i + 2] - 1) * strides[i] + 1)) / dil[i] + 1;
        trim |= got != k[i];
      }
      if (trim) {
        d = b.op("Slice", d, b.ints(filled(sd, 0)), b.ints(k), b.ints(GradBuilder.axesFrom(2, r)));
      }
      dw = some(b.typedLike(d, w));
    }
    return bias == null ? grads(dx, dw) : grads(dx, dw, db);
  }

  private static long[] pads(
      GradBuilder b, Node n, long[] xs, long[] k, long[] strides, long[] dil, int sd) {
    String auto = n.attrString("auto_pad", "NOTSET");
    switch (auto) {
      case "NOTSET":
        return n.attrLongs("pads").orElse(filled(2 * sd, 0));
      case "VALID":
        return filled(2 * sd, 0);
      case "SAME_UPPER":
      case "SAME_LOWER":
        long[] p = new long[2 * sd];
        for (int i = 0; i < sd; i++) {
          long in = xs[i + 2];
          long out = (in + strides[i] - 1) / strides[i];
          long total = Math.max(0, (out - 1) * strides[i] + (k[i] - 1) * dil[i] + 1 - in);
          long small = total / 2;
          p[i] = auto.equals("SAME_UPPER") ? small : total - small;
          p[i + sd] = total - p[i];
        }
        return p;
      default:
        throw b.fail("unknown auto_pad '" + auto + "'.");
    }
  }

  /** Every dim of {@code v} but the batch, which may be symbolic (reported as -1). */
  private static long[] staticDims(GradBuilder b, Value v, String role) {
    Shape s =
        v.shape()
            .orElseThrow(
                () ->
                    b.fail(
                        "the shape of "
                            + role
                            + " '"
                            + v.name()
                            + "' is unknown; the input and weight gradients need its static"
                            + " channel and spatial sizes. Run shape inference first."));
    long[] out = new long[s.rank()];
    for (int i = 0; i < s.rank(); i++) {
      if (s.dim(i).isFixed()) {
        out[i] = s.dim(i).value();
      } else if (i == 0 && !role.equals("W")) {
        out[i] = -1;
      } else {
        throw b.fail(
            "axis "
                + i
                + " of "
                + role
                + " '"
                + v.name()
                + "' has no static size ("
                + s
                + "); the input and weight gradients need static channel and spatial sizes."
                + " Fix the input shapes or run shape inference first.");
      }
    }
    return out;
  }

  private static long[] filled(int n, long v) {
    long[] a = new long[n];
    Arrays.fill(a, v);
    return a;
  }
}
