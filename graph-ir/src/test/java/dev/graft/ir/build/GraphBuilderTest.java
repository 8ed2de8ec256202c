package dev.graft.ir.build;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Dim;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Shape;
import dev.graft.ir.Use;
import dev.graft.ir.Value;
import dev.graft.ir.tensor.DenseTensor;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

class GraphBuilderTest {

  @Test
  void inputsHaveFixedAndSymbolicDims() {
    GraphBuilder b = GraphBuilder.create("g");
    Value x = b.input("x", DataType.INT64, "batch", 3, 4L, null);

    assertThat(b.graph().inputs()).containsExactly(x);
    assertThat(x.dataType()).contains(DataType.INT64);
    Shape s = x.shape().orElseThrow();
    assertThat(s.dims().subList(0, 3)).containsExactly(Dim.of("batch"), Dim.of(3), Dim.of(4));
    assertThat(s.dim(3)).isInstanceOf(Dim.Unknown.class);
    assertThatThrownBy(() -> b.input("y", DataType.FLOAT, 2.5))
        .hasMessageContaining("Double 2.5");
  }

  @Test
  void useListsAndProducersAreExact() {
    GraphBuilder b = GraphBuilder.create("g");
    Value x = b.input("x", DataType.FLOAT, "batch", 2);
    Value w = b.floats(new long[] {2, 2}, 1, 2, 3, 4);
    Value h = b.op("MatMul", x, w);
    Node matmul = b.lastNode();
    Value y = b.op("Add", h, h);
    Node add = b.lastNode();
    List<Value> split = b.ops("Split", 2, List.of(y), Attr.of("axis", 1L));
    Node splitNode = b.lastNode();

    assertThat(x.uses()).containsExactly(new Use(matmul, 0));
    assertThat(w.uses()).containsExactly(new Use(matmul, 1));
    assertThat(h.producer()).contains(matmul);
    assertThat(h.uses()).containsExactly(new Use(add, 0), new Use(add, 1));
    assertThat(y.uses()).containsExactly(new Use(splitNode, 0));
    assertThat(split).hasSize(2);
    for (int i = 0; i < 2; i++) {
      assertThat(split.get(i).producer()).contains(splitNode);
      assertThat(split.get(i).producerIndex()).isEqualTo(i);
    }
    assertThat(splitNode.attrLong("axis", -1)).isEqualTo(1);
    assertThat(b.graph().nodes()).containsExactly(matmul, add, splitNode);
    assertThat(w.initializer().orElseThrow().toFloatArray()).containsExactly(1, 2, 3, 4);
  }

  @Test
  void nullInputsAreOmittedOptionalInputs() {
    GraphBuilder b = GraphBuilder.create("g");
    Value x = b.input("x", DataType.FLOAT, 4);
    Value max = b.scalar(6f);
    Value y = b.op("Clip", Arrays.asList(x, null, max));
    Node clip = y.producer().orElseThrow();

    assertThat(clip.inputCount()).isEqualTo(3);
    assertThat(clip.input(1)).isNull();
    assertThat(max.uses()).containsExactly(new Use(clip, 2));
  }

  @Test
  void namesFollowThePrefixLikeTheExporter() {
    GraphBuilder b = GraphBuilder.create("g");
    Value x = b.input("x", DataType.FLOAT, "batch", 2);
    Value w = b.floats(new long[] {2, 2}, 1, 0, 0, 1);
    b.prefix("/encoder/layer.0/attention/self/query");
    Value q = b.op("MatMul", x, w);
    Value q2 = b.op("MatMul", q, w);
    b.prefix("");
    Value r = b.op("Relu", q2);

    assertThat(q.producer().orElseThrow().name())
        .isEqualTo("/encoder/layer.0/attention/self/query/MatMul");
    assertThat(q.name()).isEqualTo("/encoder/layer.0/attention/self/query/MatMul_output_0");
    assertThat(q2.producer().orElseThrow().name())
        .isEqualTo("/encoder/layer.0/attention/self/query/MatMul_1");
    assertThat(q2.name()).isEqualTo("/encoder/layer.0/attention/self/query/MatMul_1_output_0");
    assertThat(r.producer().orElseThrow().name()).isEqualTo("/Relu");
    assertThat(r.name()).isEqualTo("/Relu_output_0");
  }

  @Test
  void namesStayUniqueWhenAppendingToAGraphMadeElsewhere() {
    GraphBuilder first = GraphBuilder.create("g");
    Value x = first.input("x", DataType.FLOAT, 2);
    Value a = first.op("Relu", x);
    first.op("Relu", a);
    // A value that takes the name the builder would pick next, made without the builder.
    Graph g = first.graph();
    g.addNode(new Node("", "Neg", List.of(x), List.of("/Relu_2_output_0"), List.of(), "custom"));

    GraphBuilder b = GraphBuilder.on(g);
    for (int i = 0; i < 5; i++) b.op("Relu", x);
    b.constant(DenseTensor.scalar("c", 1f));
    b.constant(DenseTensor.scalar("c", 2f));
    b.scalar(3f);
    b.scalar(4L);

    Set<String> nodeNames = new HashSet<>();
    for (Node n : g.nodes()) assertThat(nodeNames.add(n.name())).as(n.name()).isTrue();
    Set<String> valueNames = new HashSet<>();
    for (Value v : g.values()) assertThat(valueNames.add(v.name())).as(v.name()).isTrue();
    assertThat(g.nodeCount()).isEqualTo(8);
    assertThat(g.initializers()).hasSize(4);
    assertThat(valueNames).contains("c", "c_1");
  }

  @Test
  void insertionPointPutsNewNodesBeforeTheAnchorInOrder() {
    GraphBuilder b = GraphBuilder.create("g");
    Value x = b.input("x", DataType.FLOAT, 2);
    Value a = b.op("Relu", x);
    Node relu = b.lastNode();
    Value out = b.op("Neg", a);
    Node neg = b.lastNode();
    b.output(out);

    GraphBuilder edit = GraphBuilder.on(b.graph()).before(neg);
    Value s = edit.op("Sigmoid", a);
    Node sigmoid = edit.lastNode();
    Value t = edit.op("Tanh", s);
    Node tanh = edit.lastNode();
    neg.setInput(0, t);
    edit.atEnd();
    edit.op("Identity", out);
    Node last = edit.lastNode();

    assertThat(b.graph().nodes()).containsExactly(relu, sigmoid, tanh, neg, last);
    assertThat(a.uses()).containsExactly(new Use(sigmoid, 0));
    assertThat(t.uses()).containsExactly(new Use(neg, 0));
    assertThat(b.graph().outputs()).containsExactly(out);
  }

  @Test
  void anchorMustBelongToTheGraph() {
    GraphBuilder other = GraphBuilder.create("other");
    other.op("Relu", other.input("x", DataType.FLOAT, 1));
    GraphBuilder b = GraphBuilder.create("g");
    assertThatThrownBy(() -> b.before(other.lastNode()))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("not in graph 'g'");
  }

  @Test
  void inputsFromAnotherGraphAreRefused() {
    GraphBuilder other = GraphBuilder.create("other");
    Value foreign = other.input("x", DataType.FLOAT, 1);
    GraphBuilder b = GraphBuilder.create("g");
    assertThatThrownBy(() -> b.op("Relu", foreign))
        .hasMessageContaining("Input 0 of the new Relu node is 'x'")
        .hasMessageContaining("Add it to the graph first");
  }

  @Test
  void namedOutputsRenameOrAddIdentity() {
    GraphBuilder b = GraphBuilder.create("g");
    Value x = b.input("x", DataType.FLOAT, "batch", 2);
    Value y = b.op("Relu", x);
    Value logits = b.output("logits", y);
    Value echo = b.output("echo", x);
    b.typed(logits, DataType.FLOAT, "batch", 2);

    assertThat(logits).isSameAs(y);
    assertThat(y.name()).isEqualTo("logits");
    assertThat(echo.producer().orElseThrow().opType()).isEqualTo("Identity");
    assertThat(echo.name()).isEqualTo("echo");
    assertThat(b.graph().outputs()).containsExactly(y, echo);
    assertThat(logits.shape().orElseThrow().dims()).containsExactly(Dim.of("batch"), Dim.of(2));
  }

  @Test
  void modelSetsOpsetsIrVersionAndProducer() {
    GraphBuilder b = GraphBuilder.create("g");
    Value x = b.input("x", DataType.FLOAT, 2);
    b.output(b.opIn("com.microsoft", "FastGelu", List.of(x)));
    Node fast = b.lastNode();

    Model m17 = b.model(17);
    assertThat(m17.irVersion()).isEqualTo(8);
    assertThat(m17.defaultOpset()).hasValue(17);
    assertThat(m17.opsets()).containsEntry("com.microsoft", 1L);
    assertThat(m17.producerName()).isEqualTo("graft-fixtures");
    assertThat(m17.graph()).isSameAs(b.graph());
    assertThat(fast.domain()).isEqualTo("com.microsoft");
    assertThat(b.model(18).irVersion()).isEqualTo(10);
  }

  @Test
  void constantNodesAndHelpersHoldTheirValues() {
    GraphBuilder b = GraphBuilder.create("g");
    Value shape = b.int64s(2, -1);
    Value c = b.constantNode(DenseTensor.vector("ignored", 0, 1));
    Node constant = b.lastNode();

    assertThat(shape.initializer().orElseThrow().toLongArray()).containsExactly(2, -1);
    assertThat(shape.initializer().orElseThrow().dims()).containsExactly(2);
    assertThat(b.scalar(7L).initializer().orElseThrow().dims()).isEmpty();
    assertThat(constant.opType()).isEqualTo("Constant");
    assertThat(constant.attr("value").orElseThrow().asTensor().toLongArray()).containsExactly(0, 1);
    assertThat(c.isInitializer()).isFalse();
    assertThatThrownBy(() -> b.floats(new long[] {2, 2}, 1, 2, 3))
        .hasMessageContaining("needs 4 values, got 3");
  }
}
