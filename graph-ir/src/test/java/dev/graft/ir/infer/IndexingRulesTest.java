package dev.graft.ir.infer;

import static dev.graft.ir.DataType.FLOAT;
import static dev.graft.ir.DataType.INT64;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.graft.ir.Attr;
import dev.graft.ir.Dim;
import dev.graft.ir.Shape;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.tensor.DenseTensor;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/** Gather*, Scatter*, Unsqueeze, Squeeze, Concat, Slice, Split, Pad, both opset forms. */
class IndexingRulesTest extends OrtRuleTable {

  static Stream<RuleCase> cases() {
    List<RuleCase> cases = new ArrayList<>();
    cases.add(new RuleCase("Gather axis 1 with 2-D indices", () -> {
      GraphBuilder b = GraphBuilder.create("g");
      Value idx = b.constant(DenseTensor.ofLongs(null, new long[] {2, 2}, 0, 2, 1, -1));
      b.output("y", b.op("Gather", List.of(b.input("x", FLOAT, 3, 4, 5), idx), Attr.of("axis", 1L)));
      return b.model(17);
    }));
    cases.add(new RuleCase("Gather scalar index (embedding row)", () -> {
      GraphBuilder b = GraphBuilder.create("g");
      b.output("y", b.op("Gather", b.input("x", FLOAT, 10, 4), b.scalar(3L)));
      return b.model(11);
    }));
    cases.add(new RuleCase("GatherElements", () -> {
      GraphBuilder b = GraphBuilder.create("g");
      Value idx = b.constant(DenseTensor.ofLongs(null, new long[] {2, 1}, 0, 1));
      b.output("y", b.op("GatherElements", List.of(b.input("x", FLOAT, 2, 3), idx), Attr.of("axis", 1L)));
      return b.model(17);
    }));
    cases.add(new RuleCase("GatherND", () -> {
      GraphBuilder b = GraphBuilder.create("g");
      Value idx = b.constant(DenseTensor.ofLongs(null, new long[] {2, 1}, 0, 1));
      b.output("y", b.op("GatherND", b.input("x", FLOAT, 2, 3, 4), idx));
      return b.model(17);
    }));
    cases.add(new RuleCase("ScatterND", () -> {
      GraphBuilder b = GraphBuilder.create("s");
      Value idx = b.constant(DenseTensor.ofLongs(null, new long[] {1, 1}, 1));
      b.output("y", b.op("ScatterND", b.input("x", FLOAT, 3, 4), idx, b.input("u", FLOAT, 1, 4)));
      return b.model(17);
    }));
    cases.add(new RuleCase("ScatterElements", () -> {
      GraphBuilder b = GraphBuilder.create("s");
      Value idx = b.constant(DenseTensor.ofLongs(null, new long[] {1, 2}, 0, 1));
      b.output("y", b.op("ScatterElements", b.input("x", FLOAT, 3, 4), idx, b.input("u", FLOAT, 1, 2)));
      return b.model(17);
    }));
    cases.add(new RuleCase("Unsqueeze/Squeeze opset 11 (attributes)", () -> {
      GraphBuilder b = GraphBuilder.create("u");
      Value u = b.op("Unsqueeze", List.of(b.input("x", FLOAT, 3, 4)), Attr.ints("axes", 0, -1));
      b.output("u", u);
      b.output("s", b.op("Squeeze", List.of(u), Attr.ints("axes", 0)));
      b.output("all", b.op("Squeeze", u));
      return b.model(11);
    }));
    cases.add(new RuleCase("Unsqueeze/Squeeze opset 13 (inputs)", () -> {
      GraphBuilder b = GraphBuilder.create("u");
      Value u = b.op("Unsqueeze", b.input("x", FLOAT, 3, 4), b.int64s(1, 3));
      b.output("u", u);
      b.output("s", b.op("Squeeze", u, b.int64s(-1)));
      return b.model(13);
    }));
    cases.add(new RuleCase("Concat axis -1", () -> {
      GraphBuilder b = GraphBuilder.create("c");
      b.output("y", b.op("Concat", List.of(b.input("a", FLOAT, 2, 3), b.input("c", FLOAT, 2, 5)), Attr.of("axis", -1L)));
      return b.model(17);
    }));
    cases.add(new RuleCase("Slice opset 11 with negatives and steps", () -> {
      GraphBuilder b = GraphBuilder.create("s");
      Value x = b.input("x", FLOAT, 10, 8);
      b.output("a", b.op("Slice", x, b.int64s(1, -1), b.int64s(-2, 0), b.int64s(0, 1), b.int64s(3, -2)));
      b.output("b", b.op("Slice", x, b.int64s(2), b.int64s(Long.MAX_VALUE), b.int64s(1)));
      return b.model(11);
    }));
    cases.add(new RuleCase("Slice opset 9 (attributes)", () -> {
      GraphBuilder b = GraphBuilder.create("s");
      b.output("y", b.op("Slice", List.of(b.input("x", FLOAT, 10, 8)), Attr.ints("starts", 0, 2), Attr.ints("ends", 3, 100)));
      return b.model(9);
    }));
    cases.add(new RuleCase("Split opset 11 attribute", () -> {
      GraphBuilder b = GraphBuilder.create("s");
      List<Value> parts = b.ops("Split", 2, List.of(b.input("x", FLOAT, 2, 10)), Attr.of("axis", 1L), Attr.ints("split", 3, 7));
      b.output("p", parts.get(0));
      b.output("q", parts.get(1));
      return b.model(11);
    }));
    cases.add(new RuleCase("Split opset 13 input and equal parts", () -> {
      GraphBuilder b = GraphBuilder.create("s");
      Value x = b.input("x", FLOAT, 6, 4);
      List<Value> given = b.ops("Split", 2, List.of(x, b.int64s(1, 5)));
      List<Value> equal = b.ops("Split", 3, List.of(x));
      b.output("p", given.get(0));
      b.output("q", given.get(1));
      for (int i = 0; i < 3; i++) b.output("e" + i, equal.get(i));
      return b.model(13);
    }));
    cases.add(new RuleCase("Split opset 18 num_outputs uneven", () -> {
      GraphBuilder b = GraphBuilder.create("s");
      List<Value> parts = b.ops("Split", 3, List.of(b.input("x", FLOAT, 7, 2)), Attr.of("num_outputs", 3L));
      for (int i = 0; i < 3; i++) b.output("e" + i, parts.get(i));
      return b.model(18);
    }));
    cases.add(new RuleCase("Pad opset 11 input", () -> {
      GraphBuilder b = GraphBuilder.create("p");
      b.output("y", b.op("Pad", b.input("x", FLOAT, 2, 3), b.int64s(0, 1, 2, 3)));
      return b.model(11);
    }));
    cases.add(new RuleCase("Pad opset 18 axes", () -> {
      GraphBuilder b = GraphBuilder.create("p");
      b.output("y", b.op("Pad", b.input("x", FLOAT, 2, 3, 4), b.int64s(1, 2), null, b.int64s(-1)));
      return b.model(18);
    }));
    return cases.stream();
  }

  @Test
  void positionSliceBySymbolicLength() {
    // BERT exports slice a [1, 512] position table to the sequence length.
    GraphBuilder b = GraphBuilder.create("pos");
    Value ids = b.input("input_ids", INT64, "batch", "seq");
    Value seq = b.op("Unsqueeze", List.of(b.op("Gather", b.op("Shape", ids), b.scalar(1L))), Attr.ints("axes", 0));
    Value table = b.constant(DenseTensor.ofLongs(null, new long[] {1, 16}, new long[16]));
    Value pos = b.op("Slice", table, b.int64s(0), seq, b.int64s(1), b.int64s(1));
    b.output("pos", pos);
    ShapeInference.infer(b.model(11));
    assertThat(pos.shape()).contains(Shape.of(Dim.of(1), Dim.of("seq")));
  }

  @Test
  void squeezeWithoutAxesOnSymbolicDimsLeavesRankUnknown() {
    GraphBuilder b = GraphBuilder.create("s");
    Value y = b.op("Squeeze", List.of(b.input("x", FLOAT, "n", 1)));
    b.output("y", y);
    ShapeInference.infer(b.model(11));
    assertThat(y.shape()).isEmpty();
    assertThat(y.dataType()).contains(FLOAT);
  }

  @Test
  void squeezingAFixedDimOtherThanOneIsAnError() {
    GraphBuilder b = GraphBuilder.create("s");
    b.output("y", b.op("Squeeze", List.of(b.input("x", FLOAT, 2, 3)), Attr.ints("axes", 1)));
    assertThatThrownBy(() -> ShapeInference.infer(b.model(11)))
        .isInstanceOf(ShapeInferenceException.class)
        .hasMessageContaining("Squeeze")
        .hasMessageContaining("axis 1 of size 3");
  }
}
