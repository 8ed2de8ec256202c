package dev.graft.trainer.autodiff;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Shape;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.Verifier;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.DenseTensor;
import java.nio.FloatBuffer;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** What the driver does once for all rules: path pruning, fan-out, errors. */

class BackpropTest {
  private static Node add(Graph g, String op, List<Value> in, String out, Attr... attrs) {
    return g.addNode(new Node("", op, in, List.of(out), List.of(attrs), op + "_" + out));
  }

  /** x -> MatMul(W1 trainable) -> Relu -> MatMul(W2 frozen) + Shape path -> loss. */
  private static Graph mlp() {
    Graph g = new Graph("mlp");
    Value x = g.addInput("x", Type.tensor(DataType.FLOAT, 2, 3));
    Value w1 = g.addInitializer("w1", DenseTensor.ofFloats("w1", new long[] {3, 4}, new float[] {.1f, -.2f, .3f, .4f, .5f, -.6f, .7f, .8f, -.9f, .1f, .2f, .3f}));
    Value w2 = g.addInitializer("w2", DenseTensor.ofFloats("w2", new long[] {4, 1}, .5f, -.5f, .25f, 1f));
    Value h = add(g, "MatMul", List.of(x, w1), "h").output();
    h.setType(Type.tensor(DataType.FLOAT, 2, 4));
    Value r = add(g, "Relu", List.of(h), "r").output();
    r.setType(Type.tensor(DataType.FLOAT, 2, 4));
    // A shape computation that reads the trainable path: it must get no gradient.
    Value shp = add(g, "Shape", List.of(r), "shp").output();
    Value flat = add(g, "Reshape", List.of(r, shp), "flat").output();
    flat.setType(Type.tensor(DataType.FLOAT, 2, 4));
    Value y = add(g, "MatMul", List.of(flat, w2), "y").output();
    y.setType(Type.tensor(DataType.FLOAT, 2, 1));
    // Fan-out: r is read by Shape, Reshape and this Mul twice.
    Value sq = add(g, "Mul", List.of(r, r), "sq").output();
    sq.setType(Type.tensor(DataType.FLOAT, 2, 4));
    Value s1 = add(g, "ReduceSum", List.of(y), "s1", Attr.of("keepdims", 0L)).output();
    Value s2 = add(g, "ReduceSum", List.of(sq), "s2", Attr.of("keepdims", 0L)).output();
    Value loss = add(g, "Add", List.of(s1, s2), "loss").output();
    for (Value v : List.of(s1, s2, loss)) v.setType(Type.tensor(DataType.FLOAT, Shape.scalar()));
    g.addOutput(loss);
    return g;
  }

  @Test
  void visitsOnlyThePathFromTrainablesAndSumsFanOutOnce() {
    Graph g = mlp();
    int before = g.nodeCount();
    Map<Value, Value> grads = Backprop.gradients(g, g.valueOrThrow("loss"), List.of(g.valueOrThrow("w1")));
    List<Node> added = g.nodes().subList(before, g.nodeCount());
    assertThat(grads).containsOnlyKeys(g.valueOrThrow("w1"));
    // The frozen W2 gets no gradient, the Shape node is not differentiated, and r's three
    // contributions (Reshape, Mul twice) meet in one Sum.
    assertThat(added).noneMatch(n -> n.name().startsWith("grad/Shape_shp"));
    assertThat(added.stream().filter(n -> n.is("Sum")).count()).isEqualTo(1);
    assertThat(added.stream().filter(n -> n.is("Sum")).findFirst().get().inputCount()).isEqualTo(3);
    // W2's gradient would be MatMul(Transpose(flat), dy); only dflat = dy @ W2^T is made.
    assertThat(added.stream().filter(n -> n.name().startsWith("grad/MatMul_y/") && n.is("MatMul")).count()).isEqualTo(1);
    assertThat(grads.get(g.valueOrThrow("w1")).shape().get().staticSizes()).containsExactly(3, 4);
    // Static shapes everywhere: no run-time shape arithmetic.
    assertThat(added).noneMatch(n -> n.is("Shape") || n.is("Size") || n.is("Compress"));
  }

  @Test
  void float32LayerNormGradientReadsTheForwardStatistics() {
    // loss = ReduceSum(LayerNormalization(x, g, b)), g trainable: the rule reads the node's own
    // Mean and InvStdDev instead of recomputing them (GradientCheckTest checks the values).
    Graph g = new Graph("ln");
    Value x = g.addInput("x", Type.tensor(DataType.FLOAT, 2, 4));
    Value gamma = g.addInitializer("g", DenseTensor.ofFloats("g", new long[] {4}, 1f, 2f, 3f, 4f));
    Value beta = g.addInitializer("b", DenseTensor.ofFloats("b", new long[] {4}, 0f, 0f, 0f, 0f));
    Value y = add(g, "LayerNormalization", List.of(x, gamma, beta), "y").output();
    y.setType(Type.tensor(DataType.FLOAT, 2, 4));
    Value loss = add(g, "ReduceSum", List.of(y), "loss", Attr.of("keepdims", 0L)).output();
    loss.setType(Type.tensor(DataType.FLOAT, Shape.scalar()));
    g.addOutput(loss);
    Backprop.gradients(g, loss, List.of(g.valueOrThrow("g")));
    Node ln = g.valueOrThrow("y").producer().orElseThrow();
    assertThat(ln.outputs()).hasSize(3);
    assertThat(ln.output(1).hasUses()).isTrue();
    assertThat(ln.output(2).hasUses()).isTrue();
    assertThat(g.nodes()).filteredOn(n -> n.is("LayerNormalization")).hasSize(1);
    assertThat(g.nodes()).noneMatch(n -> n.is("Sqrt"));
    Model m = new Model(g);
    m.setIrVersion(9L);
    m.setOpset("", 17);
    assertThat(Verifier.problems(m)).isEmpty();
  }

  @Test
  void gradientMatchesClosedFormInOrt() throws Exception {
    // loss = sum(relu(x W1) W2) + sum(relu(x W1)^2): dW1 = x^T ((W2^T + 2 r) * [h > 0]).
    Graph g = mlp();
    Value w1 = g.valueOrThrow("w1");
    Map<Value, Value> grads = Backprop.gradients(g, g.valueOrThrow("loss"), List.of(w1));
    g.addOutput(grads.get(w1));
    Model m = new Model(g);
    m.setIrVersion(9L);
    m.setOpset("", 17);
    float[] x = {1, -2, .5f, .3f, .7f, -1};
    float[] w1v = w1.initializer().get().toFloatArray();
    float[] w2v = g.valueOrThrow("w2").initializer().get().toFloatArray();
    double[][] expected = new double[3][4];
    for (int b = 0; b < 2; b++) {
      for (int j = 0; j < 4; j++) {
        double h = 0;
        for (int i = 0; i < 3; i++) h += x[b * 3 + i] * w1v[i * 4 + j];
        double r = Math.max(h, 0);
        double dh = h > 0 ? w2v[j] + 2 * r : 0;
        for (int i = 0; i < 3; i++) expected[i][j] += x[b * 3 + i] * dh;
      }
    }
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    try (OrtSession s = env.createSession(ModelIO.toBytes(m), new OrtSession.SessionOptions());
        OnnxTensor in = OnnxTensor.createTensor(env, FloatBuffer.wrap(x), new long[] {2, 3});
        OrtSession.Result r = s.run(Map.of("x", in), Set.of(grads.get(w1).name()))) {
      FloatBuffer got = ((OnnxTensor) r.get(0)).getFloatBuffer();
      for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 4; j++) {
          assertThat((double) got.get(i * 4 + j)).isCloseTo(expected[i][j], org.assertj.core.data.Offset.offset(1e-5));
        }
      }
    }
  }

  @Test
  void missingRuleNamesTheOperatorTheNodeAndTheWayOut() {
    Graph g = new Graph("g");
    Value w = g.addInitializer("w", DenseTensor.ofFloats("w", new long[] {2}, 1, 2));
    Value y = g.addNode(new Node("", "Softplus", List.of(w), List.of("y"), List.of(), "/head/Softplus")).output();
    Value loss = add(g, "ReduceSum", List.of(y), "loss").output();
    assertThatThrownBy(() -> Backprop.gradients(g, loss, List.of(w)))
        .hasMessageContaining("'Softplus'")
        .hasMessageContaining("/head/Softplus")
        .hasMessageContaining("Freeze the parameters that lead through it, or add a rule in GradientRules");
  }

  @Test
  void aTrainableOffThePathGetsZeros() {
    Graph g = mlp();
    Value unused = g.addInitializer("unused", DenseTensor.ofFloats("unused", new long[] {2}, 1, 2));
    Map<Value, Value> grads = Backprop.gradients(g, g.valueOrThrow("loss"), List.of(unused));
    assertThat(grads.get(unused).producer().get().opType()).isEqualTo("ConstantOfShape");
  }

  @Test
  void refusesIntegerTrainablesAndOldOpsets() {
    Graph g = mlp();
    Value idx = g.addInitializer("idx", DenseTensor.vector("idx", 1, 2));
    assertThatThrownBy(() -> Backprop.gradients(g, g.valueOrThrow("loss"), List.of(idx)))
        .hasMessageContaining("'idx' is INT64")
        .hasMessageContaining("Freeze it");
    Model m = new Model(mlp());
    m.setOpset("", 11);
    assertThatThrownBy(() -> Backprop.gradients(m, m.graph().valueOrThrow("loss"), List.of(m.graph().valueOrThrow("w1"))))
        .hasMessageContaining("Autodiff: the model is at opset 11, older than Graft's working opset 17")
        .hasMessageContaining("WorkingModels.load");
  }

  @Test
  void unbroadcastNeedsNoNodesWithoutBroadcast() {
    Graph g = new Graph("g");
    Value a = g.addInput("a", Type.tensor(DataType.FLOAT, 2, 3));
    Value w = g.addInitializer("w", DenseTensor.ofFloats("w", new long[] {2, 3}, 1, 2, 3, 4, 5, 6));
    Value y = add(g, "Add", List.of(a, w), "y").output();
    y.setType(Type.tensor(DataType.FLOAT, 2, 3));
    Value loss = add(g, "ReduceSum", List.of(y), "loss").output();
    loss.setType(Type.tensor(DataType.FLOAT, 1, 1));
    int before = g.nodeCount();
    Backprop.gradients(g, loss, List.of(w));
    // Seed (Constant + Expand) and ReduceSum's Expand: no ReduceSum or Reshape for the Add.
    assertThat(g.nodes().subList(before, g.nodeCount())).noneMatch(n -> n.is("ReduceSum") || n.is("Reshape"));
  }
}
