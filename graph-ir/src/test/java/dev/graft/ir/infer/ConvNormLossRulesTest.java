package dev.graft.ir.infer;

import static dev.graft.ir.DataType.FLOAT;
import static dev.graft.ir.DataType.INT64;
import static org.assertj.core.api.Assertions.assertThat;

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

/** Conv, pooling, BatchNormalization, LayerNormalization, the class losses. */
class ConvNormLossRulesTest extends OrtRuleTable {

  private static Value weights(GraphBuilder b, long... dims) {
    long n = 1;
    for (long d : dims) n *= d;
    return b.floats(dims, new float[(int) n]);
  }

  static Stream<RuleCase> cases() {
    List<RuleCase> cases = new ArrayList<>();
    cases.add(new RuleCase("Conv stride, pads, dilation", () -> {
      GraphBuilder b = GraphBuilder.create("c");
      b.output("y", b.op("Conv", List.of(b.input("x", FLOAT, 2, 3, 11, 9), weights(b, 4, 3, 3, 2)),
          Attr.ints("strides", 2, 1), Attr.ints("pads", 1, 0, 2, 1), Attr.ints("dilations", 1, 2)));
      return b.model(17);
    }));
    cases.add(new RuleCase("Conv groups, SAME_UPPER", () -> {
      GraphBuilder b = GraphBuilder.create("c");
      b.output("y", b.op("Conv", List.of(b.input("x", FLOAT, 1, 4, 7, 7), weights(b, 8, 2, 3, 3)),
          Attr.of("group", 2L), Attr.of("auto_pad", "SAME_UPPER"), Attr.ints("strides", 2, 2)));
      return b.model(17);
    }));
    cases.add(new RuleCase("Conv 1-D VALID", () -> {
      GraphBuilder b = GraphBuilder.create("c");
      b.output("y", b.op("Conv", List.of(b.input("x", FLOAT, 1, 2, 10), weights(b, 3, 2, 4)),
          Attr.of("auto_pad", "VALID"), Attr.ints("strides", 3)));
      return b.model(17);
    }));
    cases.add(new RuleCase("MaxPool ceil_mode with indices", () -> {
      GraphBuilder b = GraphBuilder.create("p");
      List<Value> outs = b.ops("MaxPool", 2, List.of(b.input("x", FLOAT, 1, 2, 7, 8)),
          Attr.ints("kernel_shape", 3, 3), Attr.ints("strides", 2, 2), Attr.of("ceil_mode", 1L));
      b.output("y", outs.get(0));
      b.output("idx", outs.get(1));
      return b.model(17);
    }));
    cases.add(new RuleCase("AveragePool with pads", () -> {
      GraphBuilder b = GraphBuilder.create("p");
      b.output("y", b.op("AveragePool", List.of(b.input("x", FLOAT, 1, 2, 6, 6)),
          Attr.ints("kernel_shape", 2, 3), Attr.ints("pads", 1, 1, 1, 1), Attr.ints("strides", 2, 2)));
      return b.model(17);
    }));
    cases.add(new RuleCase("GlobalAveragePool and Flatten", () -> {
      GraphBuilder b = GraphBuilder.create("p");
      Value g = b.op("GlobalAveragePool", b.input("x", FLOAT, 2, 5, 4, 3));
      b.output("g", g);
      b.output("f", b.op("Flatten", g));
      return b.model(17);
    }));
    cases.add(new RuleCase("BatchNormalization inference", () -> {
      GraphBuilder b = GraphBuilder.create("bn");
      Value one = b.floats(new long[] {3}, 1, 1, 1);
      b.output("y", b.op("BatchNormalization", b.input("x", FLOAT, 2, 3, 4, 4), one, weights(b, 3), weights(b, 3), one));
      return b.model(15);
    }));
    cases.add(new RuleCase("LayerNormalization with Mean and InvStdDev", () -> {
      GraphBuilder b = GraphBuilder.create("ln");
      List<Value> outs = b.ops("LayerNormalization", 3,
          List.of(b.input("x", FLOAT, 2, 5, 6), b.floats(new long[] {6}, 1, 1, 1, 1, 1, 1)), Attr.of("axis", -1L));
      b.output("y", outs.get(0));
      b.output("mean", outs.get(1));
      b.output("inv", outs.get(2));
      return b.model(17);
    }));
    for (String reduction : List.of("mean", "none")) {
      cases.add(new RuleCase("SoftmaxCrossEntropyLoss " + reduction, () -> {
        GraphBuilder b = GraphBuilder.create("sce");
        Value labels = b.constant(DenseTensor.ofLongs(null, new long[] {2, 3}, 0, 1, 2, 3, 0, 1));
        List<Value> outs = b.ops("SoftmaxCrossEntropyLoss", 2, List.of(b.input("scores", FLOAT, 2, 4, 3), labels),
            Attr.of("reduction", reduction));
        b.output("loss", outs.get(0));
        b.output("logp", outs.get(1));
        return b.model(17);
      }));
    }
    return cases.stream();
  }

  @Test
  void convKeepsSymbolicBatch() {
    GraphBuilder b = GraphBuilder.create("c");
    Value y = b.op("Conv", List.of(b.input("x", FLOAT, "n", 1, 8, 8), weights(b, 4, 1, 3, 3)), Attr.ints("pads", 1, 1, 1, 1));
    b.output("y", y);
    ShapeInference.infer(b.model(17));
    assertThat(y.shape()).contains(Shape.of(Dim.of("n"), Dim.of(4), Dim.of(8), Dim.of(8)));
  }

  @Test
  void lossWithUnknownLabelsStillTypesTheLoss() {
    GraphBuilder b = GraphBuilder.create("sce");
    Value loss = b.op("SoftmaxCrossEntropyLoss", b.input("s", FLOAT, "n", 4), b.input("l", INT64, "n"));
    b.output("loss", loss);
    ShapeInference.infer(b.model(17));
    assertThat(loss.shape()).contains(Shape.scalar());
  }
}
