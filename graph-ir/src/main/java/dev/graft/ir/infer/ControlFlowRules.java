package dev.graft.ir.infer;

import dev.graft.ir.DataType;
import dev.graft.ir.Dim;
import dev.graft.ir.Graph;
import dev.graft.ir.Shape;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * If, Loop and Scan: type the body's parameters from the node's inputs, infer the body, then
 * type the node's outputs from the body's. Where iterations could change a shape, only what the
 * initial value and the body's result share survives.
 */
final class ControlFlowRules {
  private ControlFlowRules() {}

  /** {@code If}: each output is what the two branches' outputs have in common. */
  static void ifRule(InferenceContext c) {
    Graph then = c.node().attr("then_branch").map(a -> a.isReference() ? null : a.asGraph()).orElse(null);
    Graph other = c.node().attr("else_branch").map(a -> a.isReference() ? null : a.asGraph()).orElse(null);
    if (then != null) c.inferSubgraph(then);
    if (other != null) c.inferSubgraph(other);
    if (then == null || other == null) return;
    for (int i = 0; i < c.outputCount(); i++) {
      if (i >= then.outputs().size() || i >= other.outputs().size()) break;
      Type t = join(then.outputs().get(i).type().orElse(null), other.outputs().get(i).type().orElse(null));
      c.setOutputType(i, t);
    }
  }

  /**
   * {@code Loop(M, cond, v...)}: body(iter, cond, v...) -> (cond, v..., scan...). Final carried
   * values join the initial and the body's types; scan outputs gain a leading iteration dim.
   */
  static void loop(InferenceContext c) {
    Graph body = c.node().attr("body").map(a -> a.isReference() ? null : a.asGraph()).orElse(null);
    if (body == null) return;
    List<Value> params = body.inputs();
    if (params.size() >= 1) trySetInput(c, params.get(0), Type.tensor(DataType.INT64, Shape.scalar()));
    if (params.size() >= 2) trySetInput(c, params.get(1), Type.tensor(DataType.BOOL, Shape.scalar()));
    int carried = c.inputCount() - 2;
    for (int i = 0; i < carried && 2 + i < params.size(); i++) {
      if (c.hasInput(2 + i)) trySetInput(c, params.get(2 + i), c.input(2 + i).type().orElse(null));
    }
    c.inferSubgraph(body);
    List<Value> results = body.outputs();
    for (int i = 0; i < carried && i < c.outputCount(); i++) {
      Type init = c.hasInput(2 + i) ? c.input(2 + i).type().orElse(null) : null;
      Type fromBody = 1 + i < results.size() ? results.get(1 + i).type().orElse(null) : null;
      c.setOutputType(i, join(init, fromBody));
    }
    // Without a condition input the trip count is M itself, when known.
    Dim iterations =
        !c.hasInput(1) && c.ints(0).isPresent() ? Dim.of(c.ints(0).get()[0]) : Dim.unknown();
    for (int k = carried; k < c.outputCount(); k++) {
      int r = 1 + k;
      if (r >= results.size()) break;
      Type t = results.get(r).type().orElse(null);
      if (t instanceof Type.TensorType tt) {
        c.setOutput(k, tt.elementType(), tt.shape().map(s -> prepend(iterations, s)).orElse(null));
      }
    }
  }

  /**
   * {@code Scan} (opset 9+): body(state..., slice...) -> (state..., scan...). Slices drop the scan
   * axis; scan outputs gain the sequence length at their output axis.
   */
  static void scan(InferenceContext c) {
    Graph body = c.node().attr("body").map(a -> a.isReference() ? null : a.asGraph()).orElse(null);
    if (body == null) return;
    if (c.opset() < 9) {
      c.inferSubgraph(body); // Opset 8's batched form: type the body only.
      return;
    }
    int m = (int) c.attrLong("num_scan_inputs", 0);
    int n = c.inputCount() - m;
    long[] inAxes = c.attrLongs("scan_input_axes").orElse(new long[m]);
    List<Value> params = body.inputs();
    Dim seq = Dim.unknown();
    for (int i = 0; i < c.inputCount() && i < params.size(); i++) {
      if (!c.hasInput(i)) continue;
      Type t = c.input(i).type().orElse(null);
      if (i >= n && t instanceof Type.TensorType tt && tt.shape().isPresent()) {
        Shape s = tt.shape().get();
        int axis = c.axis(inAxes.length > i - n ? inAxes[i - n] : 0, s.rank());
        if (i == n) seq = s.dim(axis);
        List<Dim> d = new ArrayList<>(s.dims());
        d.remove(axis);
        t = tt.withShape(Shape.of(d));
      }
      trySetInput(c, params.get(i), t);
    }
    c.inferSubgraph(body);
    List<Value> results = body.outputs();
    for (int i = 0; i < n && i < c.outputCount() && i < results.size(); i++) {
      c.setOutputType(i, join(c.input(i) == null ? null : c.input(i).type().orElse(null), results.get(i).type().orElse(null)));
    }
    int k = c.outputCount() - n;
    long[] outAxes = c.attrLongs("scan_output_axes").orElse(new long[k]);
    for (int j = 0; j < k && n + j < results.size(); j++) {
      if (!(results.get(n + j).type().orElse(null) instanceof Type.TensorType tt)) continue;
      if (tt.shape().isEmpty()) {
        c.setOutput(n + j, tt.elementType(), null);
        continue;
      }
      List<Dim> d = new ArrayList<>(tt.shape().get().dims());
      int axis = c.axis(outAxes.length > j ? outAxes[j] : 0, d.size() + 1);
      d.add(axis, seq);
      c.setOutput(n + j, tt.elementType(), Shape.of(d));
    }
  }

  /** A body parameter typed from outside; a body that declares otherwise keeps its declaration. */
  private static void trySetInput(InferenceContext c, Value param, Type t) {
    try {
      c.setSubgraphInput(param, t);
    } catch (ShapeInferenceException e) {
      // A carried value may legitimately change shape across iterations; the body's own
      // declaration is then the better description.
    }
  }

  private static Shape prepend(Dim d, Shape s) {
    List<Dim> out = new ArrayList<>();
    out.add(d);
    out.addAll(s.dims());
    return Shape.of(out);
  }

  /** What two alternative types have in common; null when nothing. */
  static Type join(Type a, Type b) {
    if (a == null || b == null) return null;
    if (a instanceof Type.TensorType ta && b instanceof Type.TensorType tb) {
      DataType elem = ta.elementType() == tb.elementType() ? ta.elementType() : null;
      Optional<Shape> shape = Optional.empty();
      if (ta.shape().isPresent() && tb.shape().isPresent() && ta.shape().get().rank() == tb.shape().get().rank()) {
        List<Dim> d = new ArrayList<>();
        for (int i = 0; i < ta.shape().get().rank(); i++) d.add(Dims.join(ta.shape().get().dim(i), tb.shape().get().dim(i)));
        shape = Optional.of(Shape.of(d));
      }
      return elem == null && shape.isEmpty() ? null : new Type.TensorType(elem, shape, null);
    }
    return a.equals(b) ? a : null;
  }
}
