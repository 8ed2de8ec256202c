package dev.graft.ir;

import static org.assertj.core.api.Assertions.assertThat;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.DenseTensor;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class ConstantsTest {
  /** y = MatMul(x, W) + b with W and b as Constant nodes, b also read by a second Add. */
  private static Model constantNodeModel() {
    Graph g = new Graph("g");
    Value x = g.addInput("x", Type.tensor(DataType.FLOAT, 2, 3));
    Node w =
        g.addNode(
            new Node("", "Constant", List.of(), List.of("W"),
                List.of(Attr.of("value", DenseTensor.ofFloats("W", new long[] {3, 2}, 1, 2, 3, 4, 5, 6))),
                "W_const"));
    Node b =
        g.addNode(
            new Node("", "Constant", List.of(), List.of("b"), List.of(Attr.floats("value_floats", 0.5f, -1f)), "b_const"));
    Node mm = g.addNode(new Node("", "MatMul", List.of(x, w.output()), List.of("xw"), List.of(), "mm"));
    Node add = g.addNode(new Node("", "Add", List.of(mm.output(), b.output()), List.of("y"), List.of(), "add"));
    Node add2 = g.addNode(new Node("", "Add", List.of(add.output(), b.output()), List.of("z"), List.of(), "add2"));
    g.addOutput(add2.output());
    g.addOutput(b.output());
    Model m = new Model(g);
    m.setIrVersion(8L);
    m.setOpset("", 17);
    return m;
  }

  private static float[][] run(Model m) throws Exception {
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    float[][] x = {{1, 2, 3}, {-1, 0.5f, 2}};
    try (OrtSession s = env.createSession(ModelIO.toBytes(m));
        OnnxTensor in = OnnxTensor.createTensor(env, x);
        OrtSession.Result r = s.run(Map.of("x", in))) {
      float[][] z = (float[][]) r.get("z").orElseThrow().getValue();
      float[] b = (float[]) r.get("b").orElseThrow().getValue();
      return new float[][] {z[0], z[1], b};
    }
  }

  @Test
  void liftingAndLoweringKeepNamesUsesAndOutputs() throws Exception {
    Model m = constantNodeModel();
    float[][] before = run(m);

    assertThat(Constants.liftToInitializers(m.graph())).isEqualTo(2);
    Graph g = m.graph();
    assertThat(g.nodes()).extracting(Node::opType).containsExactly("MatMul", "Add", "Add");
    Value b = g.initializer("b").orElseThrow();
    assertThat(b.uses()).hasSize(2);
    assertThat(g.outputs()).contains(b);
    assertThat(run(m)).isDeepEqualTo(before);

    assertThat(Constants.lowerToConstants(g, v -> true)).isEqualTo(2);
    assertThat(g.initializers()).isEmpty();
    assertThat(g.nodes()).extracting(Node::opType).containsExactly("Constant", "Constant", "MatMul", "Add", "Add");
    assertThat(g.value("W").orElseThrow().producer()).isPresent();
    assertThat(run(m)).isDeepEqualTo(before);
  }

  @Test
  void readsConstantDataFromEitherForm() {
    Model m = constantNodeModel();
    Value b = m.graph().value("b").orElseThrow();
    assertThat(Constants.valueOf(b).orElseThrow().toFloatArray()).containsExactly(0.5f, -1f);
    Constants.liftToInitializers(m.graph());
    Value lifted = m.graph().value("b").orElseThrow();
    assertThat(Constants.valueOf(lifted).orElseThrow().toFloatArray()).containsExactly(0.5f, -1f);
    assertThat(Constants.valueOf(m.graph().value("x").orElseThrow())).isEmpty();
  }
}
