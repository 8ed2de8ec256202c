package dev.graft.ir.infer;

import dev.graft.ir.Dim;
import dev.graft.ir.Shape;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;

/**
 * Ops that select, join or split along axes: Gather (and its Elements / ND forms), Scatter*,
 * Unsqueeze, Squeeze, Concat, Slice, Split, Pad. The axes of Unsqueeze, Squeeze and Split moved
 * from attributes to inputs at opset 13, Pad's pads at 11, Slice's starts and ends at 10.
 */
final class IndexingRules {
  private IndexingRules() {}

  /** {@code Gather}: data[:axis] + indices + data[axis+1:]; folds gathers from known contents. */
  static void gather(InferenceContext c) {
    Optional<Shape> data = c.shape(0);
    Optional<Shape> idx = c.shape(1);
    if (data.isEmpty() || idx.isEmpty()) {
      c.setOutput(0, c.elemOrNull(0), null);
      return;
    }
    int rank = data.get().rank();
    int axis = c.axis(c.attrLong("axis", 0), rank);
    List<Dim> out = new ArrayList<>(data.get().dims().subList(0, axis));
    out.addAll(idx.get().dims());
    out.addAll(data.get().dims().subList(axis + 1, rank));
    c.setOutput(0, c.elemOrNull(0), Shape.of(out));

    Optional<SymbolicTensor> values = c.contents(0);
    Optional<long[]> indices = c.ints(1);
    if (values.isPresent() && indices.isPresent() && rank == 1) {
      long n = values.get().size();
      List<Dim> picked = new ArrayList<>();
      for (long i : indices.get()) {
        long j = i < 0 ? i + n : i;
        if (j < 0 || j >= n) throw c.error("index %s is out of range for %s elements", i, n);
        picked.add(values.get().get((int) j));
      }
      c.setContents(0, SymbolicTensor.of(idx.get(), picked));
    }
  }

  /** {@code GatherElements}: the shape of the indices. */
  static void gatherElements(InferenceContext c) {
    c.setOutput(0, c.elemOrNull(0), c.shape(1).orElse(null));
  }

  /** {@code GatherND}: indices[:-1] + data[batch_dims + k:], k the indices' last dim. */
  static void gatherNd(InferenceContext c) {
    Optional<Shape> data = c.shape(0);
    Optional<Shape> idx = c.shape(1);
    if (data.isEmpty() || idx.isEmpty() || idx.get().rank() == 0 || !(idx.get().dim(-1) instanceof Dim.Fixed k)) {
      c.setOutput(0, c.elemOrNull(0), null);
      return;
    }
    int batch = (int) c.attrLong("batch_dims", 0);
    List<Dim> out = new ArrayList<>(idx.get().dims().subList(0, idx.get().rank() - 1));
    int from = batch + (int) k.size();
    if (from > data.get().rank()) throw c.error("indices reach past data rank %s", data.get().rank());
    out.addAll(data.get().dims().subList(from, data.get().rank()));
    c.setOutput(0, c.elemOrNull(0), Shape.of(out));
  }

  /** {@code ScatterND}, {@code ScatterElements}, {@code Scatter}: like the data. */
  static void scatter(InferenceContext c) {
    c.setOutput(0, c.elemOrNull(0), c.shape(0).orElse(null));
  }

  /** {@code Unsqueeze}: a 1 inserted at each axis of the output. */
  static void unsqueeze(InferenceContext c) {
    Optional<long[]> axes = c.intsAttrOrInput("axes", 1, 13);
    Optional<Shape> in = c.shape(0);
    if (in.isEmpty() || axes.isEmpty()) {
      Shape out = null;
      if (in.isPresent() && c.opset() >= 13 && c.shape(1).isPresent()
          && c.shape(1).get().rank() == 1 && c.shape(1).get().dim(0) instanceof Dim.Fixed f) {
        out = Dims.unknownDims(in.get().rank() + (int) f.size());
      }
      c.setOutput(0, c.elemOrNull(0), out);
      return;
    }
    int outRank = in.get().rank() + axes.get().length;
    boolean[] inserted = new boolean[outRank];
    for (int a : c.axes(axes.get(), outRank)) {
      if (inserted[a]) throw c.error("axes %s repeat an axis", Arrays.toString(axes.get()));
      inserted[a] = true;
    }
    List<Dim> out = new ArrayList<>();
    int j = 0;
    for (int i = 0; i < outRank; i++) out.add(inserted[i] ? Dims.ONE : in.get().dim(j++));
    Shape s = Shape.of(out);
    c.setOutput(0, c.elemOrNull(0), s);
    c.contents(0).ifPresent(t -> c.setContents(0, t.reshape(s)));
  }

  /** {@code Squeeze}: the given axes (each of size 1) removed; without axes, every fixed 1. */
  static void squeeze(InferenceContext c) {
    Optional<Shape> in = c.shape(0);
    boolean axesGiven = c.opset() < 13 ? c.node().hasAttr("axes") : c.hasInput(1);
    Optional<long[]> axes = c.intsAttrOrInput("axes", 1, 13);
    if (in.isEmpty() || (axesGiven && axes.isEmpty())) {
      c.setOutput(0, c.elemOrNull(0), null);
      return;
    }
    int rank = in.get().rank();
    boolean[] removed = new boolean[rank];
    if (axesGiven) {
      for (int a : c.axes(axes.get(), rank)) {
        Dim d = in.get().dim(a);
        if (d instanceof Dim.Fixed f && f.size() != 1) throw c.error("cannot squeeze axis %s of size %s", a, f.size());
        removed[a] = true;
      }
    } else {
      for (int i = 0; i < rank; i++) {
        Dim d = in.get().dim(i);
        // A symbolic or unknown dim might be 1 at run time: the rank is not known then.
        if (!(d instanceof Dim.Fixed)) {
          c.setOutput(0, c.elemOrNull(0), null);
          return;
        }
        removed[i] = d.value() == 1;
      }
    }
    List<Dim> out = new ArrayList<>();
    for (int i = 0; i < rank; i++) if (!removed[i]) out.add(in.get().dim(i));
    Shape s = Shape.of(out);
    c.setOutput(0, c.elemOrNull(0), s);
    c.contents(0).ifPresent(t -> c.setContents(0, t.reshape(s)));
  }

  /** {@code Concat}: sizes along {@code axis} add up; other dims agree. Joins 1-D contents. */
  static void concat(InferenceContext c) {
    List<Shape> shapes = new ArrayList<>();
    for (int i = 0; i < c.inputCount(); i++) {
      if (!c.hasInput(i)) continue;
      Optional<Shape> s = c.shape(i);
      if (s.isEmpty()) {
        Optional<Shape> any = anyShape(c);
        c.setOutput(0, c.elemOrNull(0), any.map(x -> Dims.unknownDims(x.rank())).orElse(null));
        return;
      }
      shapes.add(s.get());
    }
    if (shapes.isEmpty()) return;
    int rank = shapes.get(0).rank();
    int axis = c.axis(c.attrLong("axis", 0), rank);
    List<Dim> out = new ArrayList<>(shapes.get(0).dims());
    Dim sum = Dims.ZERO;
    for (Shape s : shapes) {
      if (s.rank() != rank) throw c.error("inputs have ranks %s and %s", rank, s.rank());
      for (int d = 0; d < rank; d++) {
        if (d == axis) continue;
        Optional<Dim> m = Dims.merge(out.get(d), s.dim(d));
        if (m.isEmpty()) throw c.error("inputs %s disagree on dim %s", shapes, d);
        out.set(d, m.get());
      }
      sum = Dims.add(sum, s.dim(axis));
    }
    out.set(axis, sum);
    c.setOutput(0, c.elemOrNull(0), Shape.of(out));

    if (rank != 1) return;
    // Inputs with a static length but unknown contents contribute unknown entries, so a target
    // like Concat(Unsqueeze(Gather(Shape(x), 0)), [-1, 64]) keeps what it knows.
    List<Dim> joined = new ArrayList<>();
    boolean anyKnown = false;
    for (int i = 0; i < c.inputCount(); i++) {
      if (!c.hasInput(i)) continue;
      Optional<SymbolicTensor> t = c.contents(i);
      if (t.isPresent()) {
        joined.addAll(t.get().values());
        anyKnown = true;
      } else if (c.shape(i).get().dim(0) instanceof Dim.Fixed f && f.size() <= SymbolicTensor.MAX_ELEMENTS) {
        for (long k = 0; k < f.size(); k++) joined.add(Dim.unknown());
      } else {
        return;
      }
    }
    if (anyKnown) c.setContents(0, SymbolicTensor.vector(joined));
  }

  private static Optional<Shape> anyShape(InferenceContext c) {
    for (int i = 0; i < c.inputCount(); i++) if (c.shape(i).isPresent()) return c.shape(i);
    return Optional.empty();
  }

  /** {@code Slice}: per sliced axis, the count of start:end:step; folds 1-D contents. */
  static void slice(InferenceContext c) {
    Optional<Shape> in = c.shape(0);
    if (in.isEmpty()) {
      c.setOutput(0, c.elemOrNull(0), null);
      return;
    }
    int rank = in.get().rank();
    Optional<SymbolicTensor> starts;
    Optional<SymbolicTensor> ends;
    Optional<long[]> axes;
    Optional<long[]> steps;
    if (c.opset() < 10) {
      starts = c.attrLongs("starts").map(v -> SymbolicTensor.ofLongs(Shape.of(v.length), v));
      ends = c.attrLongs("ends").map(v -> SymbolicTensor.ofLongs(Shape.of(v.length), v));
      axes = c.node().hasAttr("axes") ? c.attrLongs("axes") : Optional.empty();
      steps = Optional.empty();
    } else {
      starts = c.contents(1);
      ends = c.contents(2);
      axes = c.hasInput(3) ? c.ints(3) : Optional.empty();
      steps = c.hasInput(4) ? c.ints(4) : Optional.empty();
      if ((c.hasInput(3) && axes.isEmpty()) || (c.hasInput(4) && steps.isEmpty())) {
        c.setOutput(0, c.elemOrNull(0), Dims.unknownDims(rank));
        return;
      }
    }
    if (starts.isEmpty() || ends.isEmpty()) {
      c.setOutput(0, c.elemOrNull(0), Dims.unknownDims(rank));
      return;
    }
    int n = starts.get().size();
    if (ends.get().size() != n) throw c.error("starts and ends have %s and %s entries", n, ends.get().size());
    long[] ax = axes.orElseGet(() -> {
      long[] a = new long[n];
      for (int i = 0; i < n; i++) a[i] = i;
      return a;
    });
    long[] st = steps.orElseGet(() -> {
      long[] s = new long[n];
      Arrays.fill(s, 1);
      return s;
    });
    List<Dim> out = new ArrayList<>(in.get().dims());
    long[] fixedStart = new long[rank];
    long[] fixedStep = new long[rank];
    Arrays.fill(fixedStep, 1);
    boolean contentsFoldable = true;
    for (int i = 0; i < n; i++) {
      int a = c.axis(ax[i], rank);
      if (st[i] == 0) throw c.error("step 0 on axis %s", a);
      Dim dim = in.get().dim(a);
      Dim start = starts.get().get(i);
      Dim end = ends.get().get(i);
      out.set(a, sliceLength(dim, start, end, st[i]));
      if (dim instanceof Dim.Fixed df && start instanceof Dim.Fixed sf && end instanceof Dim.Fixed) {
        fixedStart[a] = clampStart(sf.size(), df.size(), st[i]);
        fixedStep[a] = st[i];
      } else {
        contentsFoldable = false;
      }
    }
    Shape s = Shape.of(out);
    c.setOutput(0, c.elemOrNull(0), s);
    Optional<SymbolicTensor> values = c.contents(0);
    if (values.isPresent() && rank == 1 && contentsFoldable && s.isStatic()) {
      List<Dim> picked = new ArrayList<>();
      for (long k = 0; k < s.dim(0).value(); k++) {
        picked.add(values.get().get((int) (fixedStart[0] + k * fixedStep[0])));
      }
      c.setContents(0, SymbolicTensor.vector(picked));
    }
  }

  private static long clampStart(long start, long dim, long step) {
    long s = start < 0 ? start + dim : start;
    return step > 0 ? Math.max(0, Math.min(dim, s)) : Math.max(-1, Math.min(dim - 1, s));
  }

  /** The length of {@code dim[start:end:step]}, ONNX clamping rules. */
  static Dim sliceLength(Dim dim, Dim start, Dim end, long step) {
    if (dim instanceof Dim.Fixed d && start instanceof Dim.Fixed s && end instanceof Dim.Fixed e) {
      long n = d.size();
      long b = clampStart(s.size(), n, step);
      long en = e.size() < 0 ? e.size() + n : e.size();
      en = step > 0 ? Math.max(0, Math.min(n, en)) : Math.max(-1, Math.min(n - 1, en));
      long len = step > 0 ? ceilDiv(en - b, step) : ceilDiv(b - en, -step);
      return Dim.of(Math.max(0, len));
    }
    if (step == 1 && Dims.isFixed(start, 0)) {
      // x[:end] where end is huge (to the end) or the symbol of x's own size.
      if (end instanceof Dim.Fixed e && e.size() >= Integer.MAX_VALUE) return dim;
      if (Dims.sameSize(end, dim)) return dim;
      // A symbolic end on a fixed dim: a valid model never asks for more than the dim holds
      // (real exports slice a [1, 512] position table by the sequence length), so the length is
      // the symbol.
      if (end instanceof Dim.Symbolic && dim instanceof Dim.Fixed) return end;
    }
    return Dim.unknown();
  }

  private static long ceilDiv(long a, long b) {
    return Math.floorDiv(a + b - 1, b);
  }

  /** {@code Split}: sizes from {@code split} (attribute before 13, input after), else equal parts. */
  static void split(InferenceContext c) {
    Optional<Shape> in = c.shape(0);
    int outs = c.outputCount();
    if (in.isEmpty()) {
      for (int i = 0; i < outs; i++) c.setOutput(i, c.elemOrNull(0), null);
      return;
    }
    int rank = in.get().rank();
    int axis = c.axis(c.attrLong("axis", 0), rank);
    Dim dim = in.get().dim(axis);
    boolean given = c.opset() < 13 ? c.node().hasAttr("split") : c.hasInput(1);
    Optional<long[]> sizes = c.intsAttrOrInput("split", 1, 13);
    List<Dim> parts = new ArrayList<>();
    if (given && sizes.isPresent()) {
      if (sizes.get().length != outs) throw c.error("split %s has %s sizes for %s outputs", Arrays.toString(sizes.get()), sizes.get().length, outs);
      long total = 0;
      for (long s : sizes.get()) {
        parts.add(Dim.of(s));
        total += s;
      }
      if (dim instanceof Dim.Fixed f && f.size() != total) throw c.error("split sizes sum to %s, not the axis size %s", total, f.size());
    } else if (!given && dim instanceof Dim.Fixed f) {
      // Opset 18 allows an uneven last part: the others get ceil(size / parts).
      long chunk = (f.size() + outs - 1) / outs;
      for (int i = 0; i < outs; i++) parts.add(Dim.of(Math.max(0, Math.min(chunk, f.size() - chunk * i))));
    } else {
      for (int i = 0; i < outs; i++) parts.add(Dim.unknown());
    }
    for (int i = 0; i < outs; i++) {
      List<Dim> d = new ArrayList<>(in.get().dims());
      d.set(axis, parts.get(i));
      c.setOutput(i, c.elemOrNull(0), Shape.of(d));
    }
  }

  /** {@code Pad}: each dim plus its begin and end pads (pads an input from 11, axes from 18). */
  static void pad(InferenceContext c) {
    Optional<Shape> in = c.shape(0);
    Optional<long[]> pads = c.opset() < 11 ? c.attrLongs("pads") : c.ints(1);
    if (in.isEmpty() || pads.isEmpty()) {
      c.setOutput(0, c.elemOrNull(0), in.map(s -> Dims.unknownDims(s.rank())).orElse(null));
      return;
    }
    int rank = in.get().rank();
    int[] axes;
    if (c.opset() >= 18 && c.hasInput(3)) {
      Optional<long[]> a = c.ints(3);
      if (a.isEmpty()) {
        c.setOutput(0, c.elemOrNull(0), Dims.unknownDims(rank));
        return;
      }
      axes = c.axes(a.get(), rank);
    } else {
      axes = new int[rank];
      for (int i = 0; i < rank; i++) axes[i] = i;
    }
    if (pads.get().length != 2 * axes.length) throw c.error("pads has %s entries for %s axes", pads.get().length, axes.length);
    List<Dim> out = new ArrayList<>(in.get().dims());
    for (int i = 0; i < axes.length; i++) {
      long extra = pads.get()[i] + pads.get()[i + axes.length];
      out.set(axes[i], Dims.add(out.get(axes[i]), Dim.of(extra)));
    }
    c.setOutput(0, c.elemOrNull(0), Shape.of(out));
  }
}
