package dev.graft.ir.analysis;

import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Graph;
import dev.graft.ir.Node;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.tensor.DenseTensor;
import java.util.Arrays;
import java.util.List;

/** Small graphs built by hand for the analysis tests. */
final class TestGraphs {
  private TestGraphs() {}

  static final Type F2 = Type.tensor(DataType.FLOAT, 2);

  /** A default-domain node with one output. */
  static Node node(String op, String out, String name, List<Value> inputs, Attr... attrs) {
    return new Node("", op, inputs, List.of(out), Arrays.asList(attrs), name);
  }

  static Node node(String op, String out, String name, Value... inputs) {
    return node(op, out, name, Arrays.asList(inputs));
  }

  /**
   * {@code y = Relu(Add(MatMul(x, w), b))}: x float[2,3], w float[3,4], b float[4].
   */
  static Graph mlp() {
    Graph g = new Graph("main");
    Value x = g.addInput("x", Type.tensor(DataType.FLOAT, 2, 3));
    Value w = g.addInitializer("w", DenseTensor.ofFloats("w", new long[] {3, 4}, new float[12]));
    Value b =
        g.addInitializer("b", DenseTensor.ofFloats("b", new long[] {4}, 0.5f, 1f, 1.5f, 2f));
    Node mm = g.addNode(node("MatMul", "h", "/fc/MatMul", x, w));
    Node add = g.addNode(node("Add", "hb", "/fc/Add", mm.output(), b));
    Node relu = g.addNode(node("Relu", "y", "/act/Relu", add.output()));
    g.addOutput(relu.output());
    return g;
  }

  /**
   * An If whose branches capture outer values:
   *
   * <pre>
   * main (x: float[2], c: bool[]) -> (y)
   *   %a = Relu(%x)                     # P
   *   %y = If(%c)                       # If_0
   *     then: %t = Neg(%a)    -> (t)    captures a
   *     else: %e = Identity(%x) -> (e)  captures x
   * </pre>
   */
  static Graph withIf() {
    Graph g = new Graph("main");
    Value x = g.addInput("x", F2);
    Value c = g.addInput("c", Type.tensor(DataType.BOOL));
    Node p = g.addNode(node("Relu", "a", "P", x));
    Graph then = new Graph("then");
    Node neg = then.addNode(node("Neg", "t", "then/Neg", p.output()));
    then.addOutput(neg.output());
    Graph otherwise = new Graph("else");
    Node id = otherwise.addNode(node("Identity", "e", "else/Identity", x));
    otherwise.addOutput(id.output());
    Node iff =
        g.addNode(
            node(
                "If",
                "y",
                "If_0",
                List.of(c),
                Attr.of("then_branch", then),
                Attr.of("else_branch", otherwise)));
    g.addOutput(iff.output());
    return g;
  }

  /** The node of that name in {@code g} or its subgraphs. */
  static Node find(Graph g, String name) {
    return g.allNodes().stream()
        .filter(n -> n.name().equals(name))
        .findFirst()
        .orElseThrow(() -> new AssertionError("no node " + name));
  }

  /** The subgraph held by attribute {@code attr} of the node named {@code node}. */
  static Graph sub(Graph g, String node, String attr) {
    return find(g, node).attr(attr).orElseThrow().asGraph();
  }
}
