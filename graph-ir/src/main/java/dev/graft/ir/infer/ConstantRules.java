package dev.graft.ir.infer;

import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Dim;
import dev.graft.ir.Shape;
import dev.graft.ir.tensor.Tensor;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Optional;

/** Ops that make tensors from attributes or sizes: Constant, ConstantOfShape, Range. */
final class ConstantRules {
  private ConstantRules() {}

  /** {@code Constant}: the type of whichever value attribute it carries; int contents kept. */
  static void constant(InferenceContext c) {
    var n = c.node();
    if (n.attr("value").isPresent() && !n.attr("value").get().isReference()) {
      Tensor t = n.attr("value").get().asTensor();
      c.setOutput(0, t.dataType(), t.shape());
      SymbolicTensor.fromTensor(t).ifPresent(x -> c.setContents(0, x));
    } else if (n.hasAttr("value_float")) {
      c.setOutput(0, DataType.FLOAT, Shape.scalar());
    } else if (n.hasAttr("value_floats")) {
      c.setOutput(0, DataType.FLOAT, Shape.of(floatsLength(n.attr("value_floats").get())));
    } else if (n.hasAttr("value_int")) {
      c.setOutput(0, DataType.INT64, Shape.scalar());
      c.setContents(0, SymbolicTensor.scalar(Dim.of(n.attrLong("value_int", 0))));
    } else if (n.hasAttr("value_ints")) {
      long[] v = n.attrLongs("value_ints").orElse(new long[0]);
      c.setOutput(0, DataType.INT64, Shape.of(v.length));
      c.setContents(0, SymbolicTensor.ofLongs(Shape.of(v.length), v));
    } else if (n.hasAttr("value_string")) {
      c.setOutput(0, DataType.STRING, Shape.scalar());
    } else if (n.hasAttr("value_strings")) {
      Attr a = n.attr("value_strings").get();
      c.setOutput(0, DataType.STRING, a.isReference() ? null : Shape.of(a.asStrings().size()));
    }
    // sparse_value: a serialized proto the IR keeps opaque; its type stays as declared.
  }

  private static long floatsLength(Attr a) {
    return a.isReference() ? 0 : a.asFloats().length;
  }

  /** {@code ConstantOfShape}: the shape is input 0's contents, symbols included. */
  static void constantOfShape(InferenceContext c) {
    Optional<Attr> value = c.node().attr("value");
    Tensor fill = value.isPresent() && !value.get().isReference() ? value.get().asTensor() : null;
    DataType elem = fill == null ? DataType.FLOAT : fill.dataType();
    Optional<SymbolicTensor> shape = c.contents(0);
    if (shape.isEmpty()) {
      Optional<Shape> ss = c.shape(0);
      Shape out =
          ss.isPresent() && ss.get().rank() == 1 && ss.get().dim(0) instanceof Dim.Fixed f
              ? Dims.unknownDims((int) f.size())
              : null;
      c.setOutput(0, elem, out);
      return;
    }
    Shape out = Shape.of(shape.get().values());
    c.setOutput(0, elem, out);
    Optional<Long> count = out.numElements();
    if (fill != null && count.isPresent() && count.get() <= SymbolicTensor.MAX_ELEMENTS) {
      Optional<long[]> v = SymbolicTensor.fromTensor(fill).flatMap(SymbolicTensor::longs);
      if (v.isPresent() && v.get().length == 1) {
        c.setContents(0, SymbolicTensor.of(out, Collections.nCopies(count.get().intValue(), Dim.of(v.get()[0]))));
      }
    }
  }

  /** {@code Range}: 1-D of length max(ceil((limit - start) / delta), 0). */
  static void range(InferenceContext c) {
    DataType elem = c.elemType(0).orElse(c.elemOrNull(1));
    Optional<long[]> start = c.ints(0);
    Optional<SymbolicTensor> limit = c.contents(1);
    Optional<long[]> delta = c.ints(2);
    Dim length = Dim.unknown();
    if (start.isPresent() && limit.isPresent() && delta.isPresent() && limit.get().size() == 1) {
      long s = start.get()[0];
      long d = delta.get()[0];
      if (d == 0) throw c.error("delta is 0");
      Dim l = limit.get().get(0);
      if (l instanceof Dim.Fixed lf) {
        long n = Math.max(0, (long) Math.ceil((lf.size() - s) / (double) d));
        length = Dim.of(n);
        if (n <= SymbolicTensor.MAX_ELEMENTS) {
          List<Dim> values = new ArrayList<>();
          for (long i = 0; i < n; i++) values.add(Dim.of(s + i * d));
          c.setContents(0, SymbolicTensor.vector(values));
        }
      } else if (s == 0 && d == 1) {
        // Range(0, seq, 1) has seq elements: the position ids of real exports.
        length = l;
      }
    }
    c.setOutput(0, elem, Shape.of(length));
  }
}
