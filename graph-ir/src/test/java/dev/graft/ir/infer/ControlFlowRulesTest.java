package dev.graft.ir.infer;

import static dev.graft.ir.DataType.BOOL;
import static dev.graft.ir.DataType.FLOAT;
import static dev.graft.ir.DataType.INT64;
import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.ir.Attr;
import dev.graft.ir.Dim;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Shape;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.tensor.DenseTensor;
import java.util.List;
import org.junit.jupiter.api.Test;

/** If, Loop and Scan: bodies typed from the node's inputs, outputs from the bodies. */
class ControlFlowRulesTest {

  /** y = If(cond) then Relu(x) else Neg(x) : both branches read x from the outer graph. */
  private static Model ifModel(Object... elseReshape) {
    GraphBuilder b = GraphBuilder.create("if");
    Value cond = b.input("cond", BOOL, 1);
    Value x = b.input("x", FLOAT, 2, 3);
    Graph thenG = new Graph("then");
    Graph elseG = new Graph("else");
    Node n = b.node("", "If", 1, List.of(b.op("Squeeze", cond, b.int64s(0))),
        Attr.of("then_branch", thenG), Attr.of("else_branch", elseG));
    GraphBuilder t = GraphBuilder.on(thenG).prefix("/then");
    t.output("then_out", t.op("Relu", x));
    GraphBuilder e = GraphBuilder.on(elseG).prefix("/else");
    Value neg = e.op("Neg", x);
    if (elseReshape.length > 0) neg = e.op("Reshape", neg, e.int64s((long) elseReshape[0], -1));
    e.output("else_out", neg);
    b.output("y", n.output());
    return b.model(17);
  }

  @Test
  void ifOutputsComeFromTheBranches() throws Exception {
    Model m = ifModel();
    assertThat(OrtShapes.assertInferenceMatchesOrt(m)).isEqualTo(1);
    Node n = m.graph().nodes().stream().filter(x -> x.is("If")).findFirst().orElseThrow();
    assertThat(n.subgraphs().get(0).outputs().get(0).shape()).contains(Shape.of(2, 3));
  }

  @Test
  void ifBranchesThatDisagreeLeaveTheDimUnknown() {
    Model m = ifModel(3L);
    ShapeInference.infer(m);
    Shape s = m.graph().outputs().get(0).shape().orElseThrow();
    assertThat(s.dim(0)).isInstanceOf(Dim.Unknown.class);
    assertThat(s.dim(1)).isInstanceOf(Dim.Unknown.class);
    assertThat(m.graph().outputs().get(0).dataType()).contains(FLOAT);
  }

  @Test
  void loopCarriesAndStacksScanOutputs() throws Exception {
    GraphBuilder b = GraphBuilder.create("loop");
    Value x = b.input("x", FLOAT, 2, 3);
    Graph body = new Graph("body");
    Node loop = b.node("", "Loop", 2, List.of(b.scalar(4L), b.constant(DenseTensor.ofBools(null, new long[0], true)), x),
        Attr.of("body", body));
    GraphBuilder lb = GraphBuilder.on(body).prefix("/body");
    lb.input("i", INT64);
    Value c = lb.input("c", BOOL);
    Value carried = body.addInput("acc", Type.tensor(FLOAT));
    lb.output("c_out", lb.op("Identity", c));
    Value next = lb.op("Add", carried, lb.scalar(1f));
    lb.output("acc_out", next);
    lb.output("scan_out", lb.op("Mul", next, lb.scalar(2f)));
    body.inputs().get(0).setType(Type.tensor(INT64, Shape.scalar()));
    body.inputs().get(1).setType(Type.tensor(BOOL, Shape.scalar()));
    b.output("final", loop.output(0));
    b.output("stacked", loop.output(1));
    Model m = b.model(17);
    ShapeInference.infer(m);
    assertThat(carried.shape()).contains(Shape.of(2, 3));
    assertThat(loop.output(0).shape()).contains(Shape.of(2, 3));
    Shape stacked = loop.output(1).shape().orElseThrow();
    assertThat(stacked.rank()).isEqualTo(3);
    assertThat(stacked.dims().subList(1, 3)).containsExactly(Dim.of(2), Dim.of(3));
    // The trip count is not static (a condition input exists): check the static part with ORT.
    long[] ortShape = OrtShapes.run(m).get("stacked").shape();
    assertThat(ortShape).containsExactly(4, 2, 3);
    assertThat(OrtShapes.run(m).get("final").shape()).containsExactly(2, 3);
  }

  @Test
  void scanSlicesInputsAndStacksOutputs() throws Exception {
    GraphBuilder b = GraphBuilder.create("scan");
    Value init = b.input("init", FLOAT, 3);
    Value xs = b.input("xs", FLOAT, 4, 3);
    Graph body = new Graph("body");
    Node scan = b.node("", "Scan", 2, List.of(init, xs), Attr.of("body", body), Attr.of("num_scan_inputs", 1L));
    GraphBuilder sb = GraphBuilder.on(body).prefix("/body");
    Value s = body.addInput("s", Type.tensor(FLOAT));
    Value slice = body.addInput("slice", Type.tensor(FLOAT));
    Value sum = sb.op("Add", s, slice);
    sb.output("s_out", sum);
    sb.output("y", sb.op("Mul", slice, sb.scalar(2f)));
    b.output("final", scan.output(0));
    b.output("ys", scan.output(1));
    Model m = b.model(17);
    assertThat(OrtShapes.assertInferenceMatchesOrt(m)).isEqualTo(2);
    assertThat(slice.shape()).contains(Shape.of(3));
  }
}
