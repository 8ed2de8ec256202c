package dev.graft.ir.infer;

import static dev.graft.ir.DataType.FLOAT;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.graft.ir.Attr;
import dev.graft.ir.Dim;
import dev.graft.ir.Shape;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/** Reduce*, ArgMax/ArgMin (axes as attributes and as inputs), MatMul, Gemm, Einsum. */
class ReductionAndLinearRulesTest extends OrtRuleTable {

  static Stream<RuleCase> cases() {
    List<RuleCase> cases = new ArrayList<>();
    for (String op : List.of("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin")) {
      cases.add(new RuleCase(op + " opset 11 attribute axes", () -> {
        GraphBuilder b = GraphBuilder.create("r");
        Value x = b.input("x", FLOAT, 2, 3, 4);
        b.output("keep", b.op(op, List.of(x), Attr.ints("axes", -1)));
        b.output("drop", b.op(op, List.of(x), Attr.ints("axes", 0, 2), Attr.of("keepdims", 0L)));
        b.output("all", b.op(op, List.of(x), Attr.of("keepdims", 0L)));
        return b.model(11);
      }));
      cases.add(new RuleCase(op + " opset 18 input axes", () -> {
        GraphBuilder b = GraphBuilder.create("r");
        Value x = b.input("x", FLOAT, 2, 3, 4);
        b.output("keep", b.op(op, x, b.int64s(1)));
        b.output("drop", b.op(op, List.of(x, b.int64s(0, -1)), Attr.of("keepdims", 0L)));
        b.output("all", b.op(op, x));
        b.output("noop", b.op(op, List.of(x), Attr.of("noop_with_empty_axes", 1L)));
        return b.model(18);
      }));
    }
    cases.add(new RuleCase("ReduceSum opset 13 input axes", () -> {
      GraphBuilder b = GraphBuilder.create("r");
      b.output("y", b.op("ReduceSum", b.input("x", FLOAT, 2, 3, 4), b.int64s(1)));
      return b.model(13);
    }));
    cases.add(new RuleCase("ArgMax and ArgMin", () -> {
      GraphBuilder b = GraphBuilder.create("a");
      Value x = b.input("x", FLOAT, 2, 3, 4);
      b.output("max", b.op("ArgMax", List.of(x), Attr.of("axis", 1L)));
      b.output("min", b.op("ArgMin", List.of(x), Attr.of("axis", -1L), Attr.of("keepdims", 0L)));
      return b.model(17);
    }));
    cases.add(new RuleCase("MatMul batched broadcast", () -> {
      GraphBuilder b = GraphBuilder.create("m");
      b.output("y", b.op("MatMul", b.input("a", FLOAT, 2, 1, 3, 4), b.input("c", FLOAT, 5, 4, 6)));
      return b.model(17);
    }));
    cases.add(new RuleCase("MatMul with vectors", () -> {
      GraphBuilder b = GraphBuilder.create("m");
      Value v = b.input("v", FLOAT, 4);
      b.output("vm", b.op("MatMul", v, b.input("w", FLOAT, 2, 4, 3)));
      b.output("mv", b.op("MatMul", b.input("a", FLOAT, 3, 4), v));
      b.output("vv", b.op("MatMul", v, v));
      return b.model(17);
    }));
    cases.add(new RuleCase("Gemm transA transB", () -> {
      GraphBuilder b = GraphBuilder.create("g");
      b.output("y", b.op("Gemm", List.of(b.input("a", FLOAT, 4, 3), b.input("c", FLOAT, 5, 4), b.input("bias", FLOAT, 5)),
          Attr.of("transA", 1L), Attr.of("transB", 1L)));
      return b.model(17);
    }));
    cases.add(new RuleCase("Einsum explicit, implicit and ellipsis", () -> {
      GraphBuilder b = GraphBuilder.create("e");
      Value q = b.input("q", FLOAT, 2, 4, 5, 8);
      Value k = b.input("k", FLOAT, 2, 4, 6, 8);
      b.output("att", b.op("Einsum", List.of(q, k), Attr.of("equation", "bhqd,bhkd->bhqk")));
      b.output("imp", b.op("Einsum", List.of(b.input("a", FLOAT, 3, 4), b.input("c", FLOAT, 4, 5)), Attr.of("equation", "ij,jk")));
      b.output("ell", b.op("Einsum", List.of(q), Attr.of("equation", "...d->...")));
      return b.model(17);
    }));
    return cases.stream();
  }

  @Test
  void layerNormDecompositionKeepsSymbols() {
    GraphBuilder b = GraphBuilder.create("ln");
    Value x = b.input("x", FLOAT, "batch", "seq", 384);
    Value mean = b.op("ReduceMean", List.of(x), Attr.ints("axes", -1));
    Value centred = b.op("Sub", x, mean);
    Value var = b.op("ReduceMean", List.of(b.op("Pow", centred, b.scalar(2f))), Attr.ints("axes", -1));
    Value y = b.op("Div", centred, b.op("Sqrt", b.op("Add", var, b.scalar(1e-12f))));
    b.output("y", y);
    ShapeInference.infer(b.model(11));
    assertThat(mean.shape()).contains(Shape.of(Dim.of("batch"), Dim.of("seq"), Dim.of(1)));
    assertThat(y.shape()).contains(Shape.of(Dim.of("batch"), Dim.of("seq"), Dim.of(384)));
  }

  @Test
  void reduceWithRuntimeAxesKeepsOnlyTheRank() {
    GraphBuilder b = GraphBuilder.create("r");
    Value y = b.op("ReduceMean", b.input("x", FLOAT, 2, 3), b.input("axes", dev.graft.ir.DataType.INT64, 1));
    b.output("y", y);
    ShapeInference.infer(b.model(18));
    assertThat(y.shape().orElseThrow().rank()).isEqualTo(2);
    assertThat(y.shape().orElseThrow().dims()).allMatch(d -> d instanceof Dim.Unknown);
  }

  @Test
  void matMulInnerDimMismatchIsAnError() {
    GraphBuilder b = GraphBuilder.create("m");
    b.output("y", b.op("MatMul", b.input("a", FLOAT, "n", 3), b.input("c", FLOAT, 4, 5)));
    assertThatThrownBy(() -> ShapeInference.infer(b.model(17)))
        .isInstanceOf(ShapeInferenceException.class)
        .hasMessageContaining("MatMul")
        .hasMessageContaining("inner dims differ");
  }
}
