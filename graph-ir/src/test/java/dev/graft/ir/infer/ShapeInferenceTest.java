package dev.graft.ir.infer;

import static dev.graft.ir.DataType.FLOAT;
import static dev.graft.ir.DataType.INT64;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.graft.ir.Attr;
import dev.graft.ir.Dim;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Shape;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The driver: merging with declared types, conflicts, unknown ops, order, idempotence. */
class ShapeInferenceTest {

  @Test
  void declaredSymbolSurvivesAnUnknownInferredDim() {
    GraphBuilder b = GraphBuilder.create("g");
    Value y = b.op("Relu", b.input("x", FLOAT, null, 4));
    y.setType(Type.tensor(FLOAT, Shape.of(Dim.of("batch"), Dim.unknown())));
    b.output("y", y);
    InferenceReport r = ShapeInference.infer(b.model(17));
    assertThat(y.shape()).contains(Shape.of(Dim.of("batch"), Dim.of(4)));
    assertThat(r.typedValues()).containsExactly("y");
  }

  @Test
  void inferredFixedDimRefinesADeclaredSymbol() {
    GraphBuilder b = GraphBuilder.create("g");
    Value y = b.op("Relu", b.input("x", FLOAT, 2, 4));
    y.setType(Type.tensor(FLOAT, Shape.of(Dim.of("n"), Dim.of(4))));
    b.output("y", y);
    ShapeInference.infer(b.model(17));
    assertThat(y.shape()).contains(Shape.of(2, 4));
  }

  @Test
  void declaredStaticDimThatContradictsInferenceIsAnError() {
    GraphBuilder b = GraphBuilder.create("g");
    Value h = b.op("Relu", b.input("x", FLOAT, 2, 4));
    h.setType(Type.tensor(FLOAT, 2, 5));
    b.graph().addValueInfo(h);
    b.output("y", b.op("Neg", h));
    assertThatThrownBy(() -> ShapeInference.infer(b.model(17)))
        .isInstanceOf(ShapeInferenceException.class)
        .hasMessageContaining("/Relu")
        .hasMessageContaining("'" + h.name() + "'")
        .hasMessageContaining("float[2,4]")
        .hasMessageContaining("float[2,5]")
        .hasMessageContaining("dim 1: 5 vs 4");
  }

  @Test
  void unknownOpsAreReportedAndLeftAlone() {
    GraphBuilder b = GraphBuilder.create("g");
    Value x = b.input("x", FLOAT, 2, 4);
    Value fused = b.opIn("com.microsoft", "FusedMatMul", List.of(x, x));
    Value mine = b.op("MyOwnOp", x);
    Value after = b.op("Relu", fused);
    b.output("a", after);
    b.output("m", mine);
    Value known = b.op("Sigmoid", x);
    b.output("k", known);
    InferenceReport r = ShapeInference.infer(b.model(17));
    assertThat(r.unknownOps()).containsExactlyInAnyOrder("com.microsoft:FusedMatMul", "MyOwnOp");
    assertThat(fused.type()).isEmpty();
    assertThat(after.shape()).isEmpty();
    assertThat(r.untypedValues()).contains(fused.name(), mine.name(), after.name());
    assertThat(known.shape()).contains(Shape.of(2, 4));
    assertThat(r.isComplete()).isFalse();
  }

  @Test
  void nodesStoredOutOfOrderAreVisitedProducersFirst() {
    GraphBuilder b = GraphBuilder.create("g");
    Value x = b.input("x", FLOAT, 3, 5);
    Value t = b.op("Transpose", x);
    // Put a consumer of t before t's producer in stored order.
    Graph g = b.graph();
    Node first = g.nodes().get(0);
    Node neg = new Node(null, "Neg", List.of(t), List.of("neg_out"), List.of(), "neg");
    g.insertBefore(first, neg);
    g.addOutput(neg.output());
    ShapeInference.infer(b.model(17));
    assertThat(neg.output().shape()).contains(Shape.of(5, 3));
  }

  @Test
  void inferenceOnlyAddsTypesAndValueInfo() {
    GraphBuilder b = GraphBuilder.create("g");
    Value x = b.input("x", FLOAT, "n", 6);
    Value r = b.op("Reshape", x, b.int64s(0, 2, 3));
    b.output("y", b.op("Relu", r));
    Model m = b.model(17);
    int nodes = m.graph().nodeCount();
    int inits = m.graph().initializers().size();
    InferenceReport first = ShapeInference.infer(m);
    assertThat(m.graph().nodeCount()).isEqualTo(nodes);
    assertThat(m.graph().initializers()).hasSize(inits);
    assertThat(m.graph().valueInfo()).containsExactly(r);
    assertThat(first.typedValues()).hasSize(2);
    // A second run finds nothing new.
    assertThat(ShapeInference.infer(m).typedValues()).isEmpty();
  }

  @Test
  void modelWithoutADefaultOpsetIsRefusedWithAFix() {
    Model m = new Model(new Graph("g"));
    assertThatThrownBy(() -> ShapeInference.infer(m)).hasMessageContaining("setOpset");
  }

  @Test
  void shapeContentsAreSymbolic() {
    GraphBuilder b = GraphBuilder.create("g");
    Value x = b.input("x", FLOAT, "batch", "seq", 8);
    Value s = b.op("Shape", x);
    Value batchTimesOne = b.op("Mul", b.op("Gather", s, b.int64s(0)), b.int64s(1));
    Value zeros = b.op("ConstantOfShape", b.op("Concat", List.of(batchTimesOne, b.int64s(4)), Attr.of("axis", 0L)));
    b.output("z", zeros);
    ShapeInference.infer(b.model(17));
    assertThat(s.shape()).contains(Shape.of(3));
    assertThat(s.dataType()).contains(INT64);
    assertThat(zeros.shape()).contains(Shape.of(Dim.of("batch"), Dim.of(4)));
  }
}
