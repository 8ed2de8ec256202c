package dev.graft.ir.infer;

import dev.graft.ir.DataType;
import dev.graft.ir.Dim;
import dev.graft.ir.Shape;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;

/**
 * Convolution and pooling over [N, C, spatial...]: Conv, MaxPool, AveragePool, LpPool, the
 * Global pools, and BatchNormalization. Spatial sizes follow ONNX's formula:
 * {@code floor((in + pads - dilation * (k - 1) - 1) / stride) + 1} (ceil with ceil_mode), or
 * {@code ceil(in / stride)} for SAME_* auto padding.
 */
final class ConvPoolRules {
  private ConvPoolRules() {}

  /** {@code Conv}: [N, M, out...], M the weight's first dim. */
  static void conv(InferenceContext c) {
    Optional<Shape> x = c.shape(0);
    Optional<Shape> w = c.shape(1);
    if (x.isEmpty() || x.get().rank() < 3) {
      c.setOutput(0, c.elemOrNull(0), x.map(s -> Dims.unknownDims(s.rank())).orElse(null));
      return;
    }
    int spatial = x.get().rank() - 2;
    long[] kernel = c.attrLongs("kernel_shape").orElse(null);
    if (kernel == null && w.isPresent() && w.get().rank() == spatial + 2) {
      kernel = new long[spatial];
      for (int i = 0; i < spatial; i++) kernel[i] = Dims.fixedOr(w.get().dim(i + 2), -1);
    }
    if (w.isPresent()) {
      long group = c.attrLong("group", 1);
      Dim cin = x.get().dim(1);
      Dim wc = w.get().dim(1);
      if (cin instanceof Dim.Fixed cf && wc instanceof Dim.Fixed wf && cf.size() != wf.size() * group) {
        throw c.error("input has %s channels, weight %s expects %s x group %s", cf.size(), w.get(), wf.size(), group);
      }
    }
    List<Dim> out = new ArrayList<>();
    out.add(x.get().dim(0));
    out.add(w.map(s -> s.dim(0)).orElse(Dim.unknown()));
    out.addAll(spatialDims(c, x.get(), kernel, false));
    c.setOutput(0, c.elemOrNull(0), Shape.of(out));
  }

  /** {@code MaxPool}, {@code AveragePool}, {@code LpPool}: [N, C, out...]; MaxPool's indices int64. */
  static void pool(InferenceContext c) {
    Optional<Shape> x = c.shape(0);
    if (x.isEmpty() || x.get().rank() < 3) {
      c.setOutput(0, c.elemOrNull(0), x.map(s -> Dims.unknownDims(s.rank())).orElse(null));
      return;
    }
    long[] kernel = c.attrLongs("kernel_shape").orElseThrow(() -> c.error("kernel_shape is required"));
    List<Dim> out = new ArrayList<>(x.get().dims().subList(0, 2));
    out.addAll(spatialDims(c, x.get(), kernel, c.attrLong("ceil_mode", 0) != 0));
    c.setOutput(0, c.elemOrNull(0), Shape.of(out));
    c.setOutput(1, DataType.INT64, Shape.of(out));
  }

  private static List<Dim> spatialDims(InferenceContext c, Shape x, long[] kernel, boolean ceil) {
    int spatial = x.rank() - 2;
    long[] strides = c.attrLongs("strides").orElseGet(() -> ones(spatial));
    long[] dilations = c.attrLongs("dilations").orElseGet(() -> ones(spatial));
    long[] pads = c.attrLongs("pads").orElseGet(() -> new long[2 * spatial]);
    String autoPad = c.attrString("auto_pad", "NOTSET");
    if (strides.length != spatial || dilations.length != spatial || pads.length != 2 * spatial) {
      throw c.error("strides %s, dilations %s or pads %s do not fit %s spatial dims",
          Arrays.toString(strides), Arrays.toString(dilations), Arrays.toString(pads), spatial);
    }
    List<Dim> out = new ArrayList<>();
    for (int i = 0; i < spatial; i++) {
      Dim in = x.dim(i + 2);
      if (!(in instanceof Dim.Fixed f) || kernel == null || kernel[i] < 0) {
        out.add(Dim.unknown());
        continue;
      }
      long n = f.size();
      long effK = dilations[i] * (kernel[i] - 1) + 1;
      long size;
      switch (autoPad) {
        case "SAME_UPPER", "SAME_LOWER" -> size = Math.floorDiv(n + strides[i] - 1, strides[i]);
        case "VALID" -> size = Math.floorDiv(n - effK, strides[i]) + 1;
        default -> {
          long span = n + pads[i] + pads[i + spatial] - effK;
          size = (ceil ? Math.floorDiv(span + strides[i] - 1, strides[i]) : Math.floorDiv(span, strides[i])) + 1;
          // With ceil_mode a last window that starts inside the end padding is dropped.
          if (ceil && (size - 1) * strides[i] >= n + pads[i]) size--;
        }
      }
      if (size <= 0) throw c.error("spatial dim %s of %s is too small for kernel %s", i, x, kernel[i]);
      out.add(Dim.of(size));
    }
    return out;
  }

  private static long[] ones(int n) {
    long[] a = new long[n];
    Arrays.fill(a, 1);
    return a;
  }

  /** {@code GlobalAveragePool}, {@code GlobalMaxPool}: [N, C, 1, ...]. */
  static void globalPool(InferenceContext c) {
    Optional<Shape> x = c.shape(0);
    if (x.isEmpty()) {
      c.setOutput(0, c.elemOrNull(0), null);
      return;
    }
    if (x.get().rank() < 2) throw c.error("input %s has no channel dim", x.get());
    List<Dim> out = new ArrayList<>(x.get().dims().subList(0, 2));
    for (int i = 2; i < x.get().rank(); i++) out.add(Dims.ONE);
    c.setOutput(0, c.elemOrNull(0), Shape.of(out));
  }

  /** {@code BatchNormalization}: y like x; training outputs (running mean, var, ...) are [C]. */
  static void batchNorm(InferenceContext c) {
    c.setOutput(0, c.elemOrNull(0), c.shape(0).orElse(null));
    Shape channels = c.shape(1).orElse(c.shape(0).filter(s -> s.rank() >= 2).map(s -> Shape.of(s.dim(1))).orElse(null));
    DataType statType = c.elemType(3).orElse(c.elemOrNull(1));
    for (int i = 1; i < c.outputCount(); i++) c.setOutput(i, statType, channels);
  }
}
