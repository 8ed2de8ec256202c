package dev.graft.ir.analysis;

import static dev.graft.ir.analysis.TestGraphs.node;
import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Dim;
import dev.graft.ir.Graph;
import dev.graft.ir.Node;
import dev.graft.ir.Shape;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.tensor.DenseTensor;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

class GraphPrinterTest {

  @Test
  void printsATinyGraph() {
    assertThat(GraphPrinter.print(tiny()))
        .isEqualTo(
            """
            graph tiny (x: float[batch,3], c: bool[]) -> (y: float[*])
              initializers: 2 (14 parameters)
              %h = MatMul(%x, %w)                       # /fc/MatMul
              %k = Constant[value=float[]{0.5}]()
              %s = Mul(%h, %k)                          # /fc/Mul
              %t = Transpose[perm=[1,0]](%s)            # /fc/Transpose
              %p1, %p2 = Split[axis=0](%t)
              %g = com.microsoft:Gelu(%p1)              # gelu
              %cl = Clip(%g, _, %k)
              %r = Reshape[allowzero=0](%cl, %shape)    # a/rather/long/name/for/the/Reshape/node
              %y = If(%c)                               # If_0
                then_branch: graph then () -> (o: ?)
                  %o = Neg(%r)
                else_branch: graph else () -> (e: ?)
                  %e = Identity(%p2)
            """);
  }

  @Test
  void attributesPrintCompactly() {
    assertThat(GraphPrinter.attrText(Attr.of("epsilon", 1e-12f))).isEqualTo("epsilon=1.0e-12");
    assertThat(GraphPrinter.attrText(Attr.of("mode", "constant"))).isEqualTo("mode=\"constant\"");
    assertThat(GraphPrinter.attrText(Attr.floats("scales", 1f, 2.5f))).isEqualTo("scales=[1.0,2.5]");
    assertThat(GraphPrinter.attrText(Attr.strings("names", List.of("a", "b"))))
        .isEqualTo("names=[\"a\",\"b\"]");
    long[] many = new long[20];
    Arrays.setAll(many, i -> i);
    assertThat(GraphPrinter.attrText(Attr.ints("pads", many)))
        .isEqualTo("pads=[0,1,2,3,4,5,6,7,... (20)]");
    assertThat(
            GraphPrinter.attrText(
                Attr.of("value", DenseTensor.ofFloats("v", new long[] {3, 3}, new float[9]))))
        .isEqualTo("value=float[3,3]");
    assertThat(GraphPrinter.attrText(Attr.of("value", DenseTensor.vector("v", 2, -1))))
        .isEqualTo("value=int64[2]{2,-1}");
    assertThat(
            GraphPrinter.attrText(
                Attr.of("value", DenseTensor.ofBools("v", new long[] {2}, true, false))))
        .isEqualTo("value=bool[2]{true,false}");
    Attr ref = new Attr("alpha", dev.graft.ir.AttrType.FLOAT, null, "my_alpha", null, null);
    assertThat(GraphPrinter.attrText(ref)).isEqualTo("alpha=@my_alpha");
  }

  @Test
  void initializersListedAsInputsAreNotRepeatedInTheHeader() {
    Graph g = new Graph("old");
    Value w = g.addInitializer("w", DenseTensor.ofFloats("w", new long[] {2}, 1f, 2f));
    g.addInput(w);
    Value x = g.addInput("x", Type.tensor(DataType.FLOAT, 2));
    g.addOutput(g.addNode(node("Add", "y", "", x, w)).output());

    assertThat(GraphPrinter.print(g))
        .isEqualTo(
            """
            graph old (x: float[2]) -> (y: ?)
              initializers: 1 (2 parameters)
              %y = Add(%x, %w)
            """);
  }

  @Test
  void parameterCountsUseDigitGrouping() {
    Graph g = new Graph("big");
    g.addInitializer("e", DenseTensor.ofFloats("e", new long[] {1000, 1234}, new float[1_234_000]));
    assertThat(GraphPrinter.print(g)).contains("initializers: 1 (1,234,000 parameters)");
  }

  /** A bit of everything: symbolic dims, a Constant, a custom domain, an omitted input, If. */
  private static Graph tiny() {
    Graph g = new Graph("tiny");
    Value x = g.addInput("x", Type.tensor(DataType.FLOAT, Shape.of(Dim.of("batch"), Dim.of(3))));
    Value c = g.addInput("c", Type.tensor(DataType.BOOL, Shape.scalar()));
    Value w = g.addInitializer("w", DenseTensor.ofFloats("w", new long[] {3, 4}, new float[12]));
    Value shape = g.addInitializer("shape", DenseTensor.vector("shape", -1, 4));
    Node mm = g.addNode(node("MatMul", "h", "/fc/MatMul", x, w));
    Node k =
        g.addNode(
            node("Constant", "k", "", List.of(), Attr.of("value", DenseTensor.scalar("k", 0.5f))));
    Node mul = g.addNode(node("Mul", "s", "/fc/Mul", mm.output(), k.output()));
    Node tr = g.addNode(node("Transpose", "t", "/fc/Transpose", List.of(mul.output()), Attr.ints("perm", 1, 0)));
    Node split =
        g.addNode(
            new Node(
                "", "Split", List.of(tr.output()), List.of("p1", "p2"), List.of(Attr.of("axis", 0L)), null));
    Node gelu =
        g.addNode(
            new Node("com.microsoft", "Gelu", List.of(split.output(0)), List.of("g"), List.of(), "gelu"));
    Node clip =
        g.addNode(
            new Node("", "Clip", Arrays.asList(gelu.output(), null, k.output()), List.of("cl"), List.of(), ""));
    Node reshape =
        g.addNode(
            node(
                "Reshape",
                "r",
                "a/rather/long/name/for/the/Reshape/node",
                List.of(clip.output(), shape),
                Attr.of("allowzero", 0L)));
    Graph then = new Graph("then");
    then.addOutput(then.addNode(node("Neg", "o", null, reshape.output())).output());
    Graph otherwise = new Graph("else");
    otherwise.addOutput(otherwise.addNode(node("Identity", "e", "", split.output(1))).output());
    Node iff =
        g.addNode(
            node(
                "If",
                "y",
                "If_0",
                List.of(c),
                Attr.of("then_branch", then),
                Attr.of("else_branch", otherwise)));
    iff.output().setType(Type.tensor(DataType.FLOAT));
    g.addOutput(iff.output());
    assertThat(Verifier.problems(g)).isEmpty();
    return g;
  }
}
