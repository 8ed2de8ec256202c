package dev.graft.ir.infer;

import static dev.graft.ir.DataType.FLOAT;
import static dev.graft.ir.DataType.INT64;
import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.ir.Attr;
import dev.graft.ir.Dim;
import dev.graft.ir.Model;
import dev.graft.ir.Shape;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.tensor.DenseTensor;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/** Shape, Reshape, Flatten, Transpose, Expand, Tile, constants, and folded shape arithmetic. */
class ShapeOpRulesTest extends OrtRuleTable {

  /**
   * The attention reshape of a TorchScript export: target = Concat(Unsqueeze(Gather(Shape(x), 0)),
   * Unsqueeze(Gather(Shape(x), 1)), [heads], [headDim]), with Constant nodes, at the given opset.
   */
  static Value attentionReshape(GraphBuilder b, Value x, long opset) {
    Value shape = b.op("Shape", x);
    List<Value> parts = new ArrayList<>();
    for (long i = 0; i < 2; i++) {
      Value idx = b.constantNode(DenseTensor.scalar(null, i));
      Value d = b.op("Gather", List.of(shape, idx), Attr.of("axis", 0L));
      parts.add(opset < 13
          ? b.op("Unsqueeze", List.of(d), Attr.ints("axes", 0))
          : b.op("Unsqueeze", d, b.constantNode(DenseTensor.vector(null, 0))));
    }
    parts.add(b.constantNode(DenseTensor.vector(null, 12)));
    parts.add(b.constantNode(DenseTensor.vector(null, 32)));
    Value target = b.op("Concat", parts, Attr.of("axis", 0L));
    return b.op("Reshape", x, target);
  }

  static Stream<RuleCase> cases() {
    List<RuleCase> cases = new ArrayList<>();
    for (long opset : new long[] {11, 13, 17}) {
      cases.add(new RuleCase("attention reshape opset " + opset, () -> {
        GraphBuilder b = GraphBuilder.create("att");
        b.output("y", attentionReshape(b, b.input("x", FLOAT, 2, 7, 384), opset));
        return b.model(opset);
      }));
    }
    cases.add(new RuleCase("Reshape with 0 and -1", () -> {
      GraphBuilder b = GraphBuilder.create("r");
      b.output("y", b.op("Reshape", b.input("x", FLOAT, 2, 3, 4), b.int64s(0, -1)));
      return b.model(17);
    }));
    cases.add(new RuleCase("Shape and Size", () -> {
      GraphBuilder b = GraphBuilder.create("s");
      Value x = b.input("x", FLOAT, 2, 3, 4);
      b.output("shape", b.op("Shape", x));
      b.output("size", b.op("Size", x));
      b.output("tail", b.op("Shape", List.of(x), Attr.of("start", -2L)));
      return b.model(17);
    }));
    cases.add(new RuleCase("Flatten axis 2", () -> {
      GraphBuilder b = GraphBuilder.create("f");
      b.output("y", b.op("Flatten", List.of(b.input("x", FLOAT, 2, 3, 4, 5)), Attr.of("axis", 2L)));
      return b.model(17);
    }));
    cases.add(new RuleCase("Transpose perm and default", () -> {
      GraphBuilder b = GraphBuilder.create("t");
      Value x = b.input("x", FLOAT, 2, 3, 4);
      b.output("y", b.op("Transpose", List.of(x), Attr.ints("perm", 0, 2, 1)));
      b.output("z", b.op("Transpose", x));
      return b.model(17);
    }));
    cases.add(new RuleCase("Expand", () -> {
      GraphBuilder b = GraphBuilder.create("e");
      b.output("y", b.op("Expand", b.input("x", FLOAT, 3, 1), b.int64s(2, 1, 4)));
      return b.model(17);
    }));
    cases.add(new RuleCase("Tile", () -> {
      GraphBuilder b = GraphBuilder.create("t");
      b.output("y", b.op("Tile", b.input("x", FLOAT, 3, 2), b.int64s(2, 3)));
      return b.model(17);
    }));
    cases.add(new RuleCase("ConstantOfShape from Shape", () -> {
      GraphBuilder b = GraphBuilder.create("c");
      Value s = b.op("Shape", b.input("x", FLOAT, 2, 5));
      b.output("y", b.op("ConstantOfShape", List.of(s), Attr.of("value", DenseTensor.vector(null, 3))));
      return b.model(17);
    }));
    cases.add(new RuleCase("Range from a computed limit", () -> {
      GraphBuilder b = GraphBuilder.create("r");
      Value n = b.op("Gather", b.op("Shape", b.input("x", FLOAT, 2, 6)), b.scalar(1L));
      b.output("y", b.op("Range", b.scalar(1L), n, b.scalar(2L)));
      return b.model(17);
    }));
    cases.add(new RuleCase("Constant value_ints and value_float", () -> {
      GraphBuilder b = GraphBuilder.create("c");
      b.output("i", b.op("Constant", List.of(), Attr.ints("value_ints", 1, 2, 3)));
      b.output("f", b.op("Constant", List.of(), Attr.of("value_float", 1.5f)));
      return b.model(17);
    }));
    cases.add(new RuleCase("folded arithmetic Mul/Div/Sub/Equal/Where feeds Reshape", () -> {
      GraphBuilder b = GraphBuilder.create("a");
      Value x = b.input("x", FLOAT, 4, 6);
      Value s = b.op("Shape", x);
      Value half = b.op("Div", s, b.int64s(2, 1));          // [2, 6]
      Value prod = b.op("Mul", half, b.int64s(1, 2));       // [2, 12]
      Value less = b.op("Sub", prod, b.int64s(0, 12));      // [2, 0]
      Value isZero = b.op("Equal", less, b.int64s(0, 0));   // [F, T]
      Value target = b.op("Where", isZero, b.int64s(-1, -1), less); // [2, -1]
      Value cast = b.op("Cast", List.of(target), Attr.of("to", (long) INT64.code()));
      b.output("y", b.op("Reshape", x, cast));
      return b.model(17);
    }));
    return cases.stream();
  }

  @Test
  void attentionReshapeKeepsSymbolsAtEveryOpset() {
    for (long opset : new long[] {11, 13, 18}) {
      GraphBuilder b = GraphBuilder.create("att");
      Value y = attentionReshape(b, b.input("x", FLOAT, "batch", "sequence", 384), opset);
      b.output("y", y);
      InferenceReport r = ShapeInference.infer(b.model(opset));
      assertThat(y.shape()).as("opset %s", opset)
          .contains(Shape.of(Dim.of("batch"), Dim.of("sequence"), Dim.of(12), Dim.of(32)));
      assertThat(r.unknownOps()).isEmpty();
      assertThat(r.untypedValues()).isEmpty();
    }
  }

  @Test
  void reshapeMinusOneCancelsSymbols() {
    GraphBuilder b = GraphBuilder.create("r");
    Value x = b.input("x", FLOAT, "batch", "seq", 384);
    Value flat = b.op("Reshape", x, b.int64s(-1, 384));
    Value back = b.op("Reshape", flat, b.op("Shape", x));
    Value perHead = b.op("Reshape", x, b.op("Concat", List.of(b.op("Shape", List.of(x), Attr.of("end", 2L)), b.int64s(-1, 32)), Attr.of("axis", 0L)));
    b.output("flat", flat);
    b.output("back", back);
    b.output("heads", perHead);
    ShapeInference.infer(b.model(17));
    // batch * seq is not one symbol: unknown, but 384 stays.
    assertThat(flat.shape().orElseThrow().dim(0)).isInstanceOf(Dim.Unknown.class);
    assertThat(flat.shape().orElseThrow().dim(1)).isEqualTo(Dim.of(384));
    assertThat(back.shape()).contains(Shape.of(Dim.of("batch"), Dim.of("seq"), Dim.of(384)));
    assertThat(perHead.shape()).contains(Shape.of(Dim.of("batch"), Dim.of("seq"), Dim.of(12), Dim.of(32)));
  }

  @Test
  void constantOfShapeAndRangeKeepSymbols() {
    GraphBuilder b = GraphBuilder.create("c");
    Value x = b.input("x", FLOAT, "batch", "seq");
    Value ones = b.op("ConstantOfShape", b.op("Shape", x));
    Value seq = b.op("Gather", b.op("Shape", x), b.scalar(1L));
    Value positions = b.op("Range", b.scalar(0L), seq, b.scalar(1L));
    b.output("ones", ones);
    b.output("pos", positions);
    ShapeInference.infer(b.model(17));
    assertThat(ones.shape()).contains(Shape.of(Dim.of("batch"), Dim.of("seq")));
    assertThat(ones.dataType()).contains(FLOAT);
    assertThat(positions.shape()).contains(Shape.of(Dim.of("seq")));
  }

  @Test
  void reshapeTargetOfUnknownContentsStillGivesRank() {
    GraphBuilder b = GraphBuilder.create("r");
    Value t = b.input("t", INT64, 3);
    Value y = b.op("Reshape", b.input("x", FLOAT, 6), t);
    b.output("y", y);
    ShapeInference.infer(b.model(17));
    assertThat(y.shape().orElseThrow().rank()).isEqualTo(3);
  }
}
