package dev.graft.ir.infer;

import static dev.graft.ir.DataType.BOOL;
import static dev.graft.ir.DataType.FLOAT;
import static dev.graft.ir.DataType.INT64;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.graft.ir.Attr;
import dev.graft.ir.Dim;
import dev.graft.ir.Model;
import dev.graft.ir.Shape;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

class ElementwiseRulesTest extends OrtRuleTable {

  static Stream<RuleCase> cases() {
    List<RuleCase> cases = new ArrayList<>();
    for (String op : List.of("Relu", "Sigmoid", "Tanh", "Erf", "Exp", "Log", "Sqrt", "Neg", "Abs",
        "Reciprocal", "Sign", "Identity", "Softmax", "LogSoftmax", "Floor")) {
      cases.add(new RuleCase(op, () -> {
        GraphBuilder b = GraphBuilder.create(op);
        b.output("y", b.op(op, b.input("x", FLOAT, 2, 3)));
        return b.model(17);
      }));
    }
    cases.add(new RuleCase("Gelu opset 20", () -> {
      GraphBuilder b = GraphBuilder.create("gelu");
      b.output("y", b.op("Gelu", b.input("x", FLOAT, 2, 3)));
      return b.model(20);
    }));
    for (String op : List.of("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min")) {
      cases.add(new RuleCase(op + " broadcast", () -> {
        GraphBuilder b = GraphBuilder.create(op);
        b.output("y", b.op(op, b.input("a", FLOAT, 2, 1, 4), b.input("c", FLOAT, 3, 1)));
        return b.model(17);
      }));
    }
    cases.add(new RuleCase("Sum of three", () -> {
      GraphBuilder b = GraphBuilder.create("sum");
      b.output("y", b.op("Sum", b.input("a", FLOAT, 4), b.input("c", FLOAT, 3, 1), b.input("d", FLOAT, 2, 1, 1)));
      return b.model(17);
    }));
    for (String op : List.of("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual")) {
      cases.add(new RuleCase(op, () -> {
        GraphBuilder b = GraphBuilder.create(op);
        b.output("y", b.op(op, b.input("a", FLOAT, 5, 1), b.input("c", FLOAT, 3)));
        return b.model(17);
      }));
    }
    for (String op : List.of("And", "Or", "Xor")) {
      cases.add(new RuleCase(op, () -> {
        GraphBuilder b = GraphBuilder.create(op);
        b.output("y", b.op(op, b.input("a", BOOL, 2, 3), b.input("c", BOOL, 3)));
        return b.model(17);
      }));
    }
    cases.add(new RuleCase("Not", () -> {
      GraphBuilder b = GraphBuilder.create("not");
      b.output("y", b.op("Not", b.input("a", BOOL, 2, 3)));
      return b.model(17);
    }));
    cases.add(new RuleCase("Where", () -> {
      GraphBuilder b = GraphBuilder.create("where");
      b.output("y", b.op("Where", b.input("c", BOOL, 3, 1), b.input("x", FLOAT, 1, 4), b.input("z", FLOAT, 2, 1, 1)));
      return b.model(17);
    }));
    cases.add(new RuleCase("Clip with bounds", () -> {
      GraphBuilder b = GraphBuilder.create("clip");
      b.output("y", b.op("Clip", b.input("x", FLOAT, 2, 5), b.scalar(0.6f), b.scalar(0.9f)));
      return b.model(17);
    }));
    cases.add(new RuleCase("Dropout with mask", () -> {
      GraphBuilder b = GraphBuilder.create("dropout");
      List<Value> outs = b.ops("Dropout", 2, List.of(b.input("x", FLOAT, 2, 5)));
      b.output("y", outs.get(0));
      b.output("mask", outs.get(1));
      return b.model(13);
    }));
    cases.add(new RuleCase("Cast to int64", () -> {
      GraphBuilder b = GraphBuilder.create("cast");
      b.output("y", b.op("Cast", List.of(b.input("x", FLOAT, 2, 5)), Attr.of("to", (long) INT64.code())));
      return b.model(17);
    }));
    cases.add(new RuleCase("CastLike", () -> {
      GraphBuilder b = GraphBuilder.create("castlike");
      b.output("y", b.op("CastLike", b.input("x", FLOAT, 2, 5), b.input("t", INT64, 1)));
      return b.model(17);
    }));
    return cases.stream();
  }

  @Test
  void symbolicDimsBroadcast() {
    GraphBuilder b = GraphBuilder.create("sym");
    Value x = b.input("x", FLOAT, "batch", "seq", 1);
    Value y = b.input("y", FLOAT, "seq", 4);
    Value z = b.input("z", FLOAT, 1, "seq", "hidden");
    Value sum = b.op("Add", x, y);
    Value prod = b.op("Mul", sum, b.input("w", FLOAT, "batch", 1, 1));
    Value other = b.op("Add", x, z);
    b.output("a", prod);
    b.output("o", other);
    Model m = b.model(17);
    ShapeInference.infer(m);
    assertThat(sum.shape()).contains(Shape.of(Dim.of("batch"), Dim.of("seq"), Dim.of(4)));
    assertThat(prod.shape()).contains(Shape.of(Dim.of("batch"), Dim.of("seq"), Dim.of(4)));
    // "hidden" against 1 broadcasts to hidden; batch against 1 stays batch.
    assertThat(other.shape()).contains(Shape.of(Dim.of("batch"), Dim.of("seq"), Dim.of("hidden")));
  }

  @Test
  void differentSymbolsGiveAnUnknownDim() {
    GraphBuilder b = GraphBuilder.create("sym");
    Value s = b.op("Add", b.input("x", FLOAT, "n", 3), b.input("y", FLOAT, "m", 3));
    b.output("s", s);
    ShapeInference.infer(b.model(17));
    assertThat(s.shape().orElseThrow().dim(0)).isInstanceOf(Dim.Unknown.class);
    assertThat(s.shape().orElseThrow().dim(1)).isEqualTo(Dim.of(3));
  }

  @Test
  void clashingFixedDimsNameTheNode() {
    GraphBuilder b = GraphBuilder.create("bad");
    b.output("s", b.op("Add", b.input("x", FLOAT, 2, 3), b.input("y", FLOAT, 2, 4)));
    assertThatThrownBy(() -> ShapeInference.infer(b.model(17)))
        .isInstanceOf(ShapeInferenceException.class)
        .hasMessageContaining("/Add")
        .hasMessageContaining("[2,3]")
        .hasMessageContaining("[2,4]");
  }
}
