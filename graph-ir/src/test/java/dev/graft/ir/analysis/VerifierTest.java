package dev.graft.ir.analysis;

import static dev.graft.ir.analysis.TestGraphs.F2;
import static dev.graft.ir.analysis.TestGraphs.find;
import static dev.graft.ir.analysis.TestGraphs.mlp;
import static dev.graft.ir.analysis.TestGraphs.node;
import static dev.graft.ir.analysis.TestGraphs.sub;
import static dev.graft.ir.analysis.TestGraphs.withIf;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import dev.graft.ir.Attr;
import dev.graft.ir.Function;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Use;
import dev.graft.ir.Value;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

class VerifierTest {

  // ---- valid graphs -----------------------------------------------------------------------------

  @Test
  void aPlainGraphIsValid() {
    assertThat(Verifier.problems(mlp())).isEmpty();
    Verifier.verify(mlp());
  }

  @Test
  void subgraphsMayCaptureOuterValues() {
    Graph g = withIf();
    assertThat(Verifier.problems(g)).isEmpty();
  }

  @Test
  void aSubgraphVerifiedAloneStillSeesTheGraphsAroundIt() {
    Graph g = withIf();
    assertThat(Verifier.problems(sub(g, "If_0", "then_branch"))).isEmpty();
  }

  @Test
  void aCaptureMayComeFromANodeStoredAfterTheIf() {
    // Stored order is not topological order; scope is the whole enclosing graph.
    Graph g = withIf();
    Node p = find(g, "P");
    Node iff = find(g, "If_0");
    g.reorder(List.of(iff, p));
    assertThat(Verifier.problems(g)).isEmpty();
  }

  @Test
  void aValidModelWithAFunctionIsValid() {
    Model m = new Model(mlp());
    m.functions().add(new Function("local", "Double", functionBody()));
    assertThat(Verifier.problems(m)).isEmpty();
    Verifier.verify(m);
  }

  @Test
  void mutationsThroughTheApiKeepTheGraphValid() {
    Graph g = mlp();
    Node add = find(g, "/fc/Add");
    Node relu = find(g, "/act/Relu");
    Node sig = g.insertAfter(add, node("Sigmoid", "s", "/act/Sigmoid", add.output()));
    relu.setInput(0, sig.output());
    assertThat(Verifier.problems(g)).isEmpty();
    relu.setInput(0, add.output());
    g.removeNode(sig);
    assertThat(Verifier.problems(g)).isEmpty();
  }

  // ---- each invariant, broken on purpose ----------------------------------------------------------

  @Test
  void anInputNobodyDefinesIsReported() {
    Graph g = mlp();
    Value ghost = new Value("ghost", F2);
    Node relu = find(g, "/act/Relu");
    g.addNode(node("Add", "z", "/encoder/Add_3", relu.output(), ghost));

    assertThat(Verifier.problems(g))
        .containsExactly(
            "Node '/encoder/Add_3' input 1 reads 'ghost', which no node, input or initializer of"
                + " graph 'main' defines. Add it to the graph, or rewire the input with setInput.");
  }

  @Test
  void aSubgraphReadingAValueOfItsSiblingIsReported() {
    Graph g = withIf();
    Graph then = sub(g, "If_0", "then_branch");
    Value e = sub(g, "If_0", "else_branch").value("e").orElseThrow();
    find(then, "then/Neg").setInput(0, e);

    assertThat(Verifier.problems(g))
        .singleElement()
        .asString()
        .startsWith("Node 'then/Neg' input 0 reads 'e', which no node, input or initializer of graph"
            + " 'then' (attribute 'then_branch' of node 'If_0' in graph 'main') or of the graphs"
            + " around it defines.")
        .contains("It belongs to graph 'else', which is out of scope.");
  }

  @Test
  void aCaptureThatResolvesNowhereIsReported() {
    Graph g = withIf();
    Graph otherwise = sub(g, "If_0", "else_branch");
    find(otherwise, "else/Identity").setInput(0, new Value("outer_ghost", F2));

    assertThat(Verifier.problems(g))
        .singleElement()
        .asString()
        .contains("'else/Identity' input 0 reads 'outer_ghost'", "graph 'else'");
  }

  @Test
  void aSubgraphShadowingAnOuterNameIsReported() {
    Graph g = withIf();
    Graph then = new Graph("then2");
    // Built detached, so Graph cannot see that "a" is taken outside.
    Node n = then.addNode(node("Neg", "a", "then2/Neg", g.value("x").orElseThrow()));
    then.addOutput(n.output());
    // Detach the old branch's read of P's output, or it would linger as an out-of-scope use.
    find(g, "then/Neg").setInput(0, null);
    find(g, "If_0").setAttr(Attr.of("then_branch", then));

    assertThat(Verifier.problems(g))
        .singleElement()
        .asString()
        .startsWith("Value 'a' of graph 'then2'")
        .contains("shadows the value of that name in graph 'main'");
  }

  @Test
  void twoValuesWithOneNameInAGraphAreReported() {
    Graph g = mlp();
    Corrupt.setName(g.value("hb").orElseThrow(), "h");

    assertThat(Verifier.problems(g))
        .anySatisfy(
            p -> assertThat(p).isEqualTo(
                "Graph 'main' defines two different values named 'h'. Rename one with"
                    + " Graph.rename or Graph.freshName."));
  }

  @Test
  void aCycleIsReportedWithTheNodesOnIt() {
    Graph g = mlp();
    Node mm = find(g, "/fc/MatMul");
    Node add = find(g, "/fc/Add");
    mm.setInput(0, add.output());

    assertThat(Verifier.problems(g))
        .anySatisfy(
            p -> assertThat(p).startsWith("Graph 'main' has a cycle: '/fc/MatMul' -> '/fc/Add' ->"
                + " '/fc/MatMul'."))
        // x is now unused, which is fine; the cycle is the only problem.
        .hasSize(1);
  }

  @Test
  void aCycleThroughASubgraphCaptureIsReported() {
    Graph g = withIf();
    // P now reads the If's output, and the If's then-branch reads P's output.
    find(g, "P").setInput(0, find(g, "If_0").output());

    assertThat(Verifier.problems(g))
        .containsExactly(
            "Graph 'main' has a cycle: 'P' -> 'If_0' -> 'P'. Break it by rewiring one of these"
                + " nodes' inputs with setInput.");
  }

  @Test
  void aUseMissingFromTheUseListIsReported() {
    Graph g = mlp();
    Value h = g.value("h").orElseThrow();
    Corrupt.usesOf(h).clear();

    assertThat(Verifier.problems(g))
        .containsExactly(
            "Node '/fc/Add' input 0 in graph 'main' reads 'h', but that value's use list has this"
                + " use 0 times instead of once. Edit edges with Node.setInput only.");
  }

  @Test
  void aUseRecordedTwiceIsReported() {
    Graph g = mlp();
    Value h = g.value("h").orElseThrow();
    Corrupt.usesOf(h).add(new Use(find(g, "/fc/Add"), 0));

    assertThat(Verifier.problems(g)).singleElement().asString().contains("2 times instead of once");
  }

  @Test
  void aUseThatNoInputMatchesIsReported() {
    Graph g = mlp();
    Value x = g.value("x").orElseThrow();
    Corrupt.usesOf(x).add(new Use(find(g, "/act/Relu"), 0));
    Corrupt.usesOf(x).add(new Use(find(g, "/act/Relu"), 3));

    assertThat(Verifier.problems(g))
        .containsExactlyInAnyOrder(
            "Value 'x' of graph 'main' lists a use by node '/act/Relu' input 0, but that input"
                + " reads 'hb'. Edit edges with Node.setInput only.",
            "Value 'x' of graph 'main' lists a use by node '/act/Relu' input 3, but that input"
                + " does not exist. Edit edges with Node.setInput only.");
  }

  @Test
  void aNodeLeftOutOfTheGraphStillReadingAValueIsReported() {
    Graph g = mlp();
    // Constructing a node records its uses at once; forgetting to add it leaves a dangling use.
    new Node("", "Neg", List.of(g.value("x").orElseThrow()), List.of("nx"), List.of(), "Forgotten");

    assertThat(Verifier.problems(g))
        .singleElement()
        .asString()
        .startsWith("Value 'x' of graph 'main' is read by node 'Forgotten' input 0, which belongs to"
            + " no graph.");
  }

  @Test
  void aUseFromAnotherGraphIsReported() {
    Graph g = mlp();
    Graph other = new Graph("other");
    other.addNode(node("Neg", "nx", "Elsewhere", g.value("x").orElseThrow()));

    assertThat(Verifier.problems(g))
        .singleElement()
        .asString()
        .contains("read by node 'Elsewhere' input 0 in graph 'other', where it is out of scope");
    assertThat(Verifier.problems(other)).singleElement().asString().contains("reads 'x'");
  }

  @Test
  void anOutputWithTheWrongProducerIndexIsReported() {
    Graph g = mlp();
    Corrupt.setProducerIndex(g.value("h").orElseThrow(), 2);

    assertThat(Verifier.problems(g))
        .containsExactly(
            "Output 0 ('h') of node '/fc/MatMul' in graph 'main' names output 2 of node"
                + " '/fc/MatMul' as its producer. A node's outputs are created by that node.");
  }

  @Test
  void aGraphInputThatIsANodeOutputIsReported() {
    Graph g = mlp();
    g.addInput(g.value("h").orElseThrow());

    assertThat(Verifier.problems(g))
        .singleElement()
        .asString()
        .startsWith("Input 'h' of graph 'main' is also output 0 of node '/fc/MatMul'.");
  }

  @Test
  void aValueWhoseGraphIsAnotherIsReported() {
    Graph g = mlp();
    Graph other = new Graph("other");
    other.addInput(g.value("x").orElseThrow()); // moves x.graph() to other

    assertThat(Verifier.problems(g))
        .singleElement()
        .asString()
        .startsWith("Value 'x' is defined by graph 'main' but its graph() is 'other'.");
  }

  @Test
  void anUndefinedGraphOutputIsReported() {
    Graph g = mlp();
    g.setOutput(0, new Value("nowhere", F2));

    assertThat(Verifier.problems(g))
        .containsExactly(
            "Output 0 of graph 'main' is 'nowhere', which no node, input or initializer in scope"
                + " defines. Point it at a defined value with Graph.setOutput.");
  }

  @Test
  void aNodeWhoseGraphIsWrongIsReported() {
    Graph g = mlp();
    Corrupt.setGraph(find(g, "/act/Relu"), new Graph("elsewhere"));

    assertThat(Verifier.problems(g))
        .anySatisfy(
            p -> assertThat(p).startsWith("Node '/act/Relu' is listed in graph 'main' but its"
                + " graph() is 'elsewhere'."))
        // Seen from the value side, the same node now reads 'hb' from outside its scope.
        .anySatisfy(p -> assertThat(p).contains("node '/act/Relu' input 0 in graph 'elsewhere'"));
  }

  @Test
  void aNodeListedTwiceIsReported() {
    Graph g = mlp();
    Corrupt.listTwice(g, find(g, "/act/Relu"));

    assertThat(Verifier.problems(g))
        .anySatisfy(p -> assertThat(p).startsWith("Node '/act/Relu' is listed more than once"));
  }

  @Test
  void aSubgraphHeldByTwoNodesIsReported() {
    Graph g = withIf();
    Graph then = sub(g, "If_0", "then_branch");
    Node second =
        g.addNode(
            node(
                "If",
                "y2",
                "If_1",
                List.of(g.value("c").orElseThrow()),
                Attr.of("then_branch", then),
                Attr.of("else_branch", new Graph("else2"))));
    assertThat(then.parentNode()).containsSame(second);

    assertThat(Verifier.problems(g))
        .anySatisfy(
            p -> assertThat(p).startsWith("Subgraph 'then' of node 'If_0' in graph 'main' has"
                + " parentNode() 'If_1'."))
        .anySatisfy(p -> assertThat(p).contains("is held by more than one attribute"));
  }

  @Test
  void anInitializerWithoutATensorIsReported() {
    Graph g = mlp();
    g.setInitializer(g.initializer("w").orElseThrow(), null);

    assertThat(Verifier.problems(g))
        .containsExactly(
            "Initializer 'w' of graph 'main' has no tensor. Give it one with Graph.setInitializer.");
  }

  @Test
  void aStaleNameIndexIsReported() {
    Graph g = mlp();
    Corrupt.nameIndex(g).put("stale", new Value("stale", F2));

    assertThat(Verifier.problems(g))
        .containsExactly(
            "Graph 'main' indexes a value 'stale' that is none of its inputs, initializers or node"
                + " outputs.");
  }

  @Test
  void problemsDeepInsideSubgraphsAreFound() {
    Graph g = withIf();
    Graph then = sub(g, "If_0", "then_branch");
    Graph inner = new Graph("inner");
    Node bad = inner.addNode(node("Neg", "q", "inner/Neg", new Value("deep_ghost", F2)));
    inner.addOutput(bad.output());
    then.addNode(
        node(
            "If",
            "t2",
            "If_inner",
            List.of(g.value("c").orElseThrow()),
            Attr.of("then_branch", inner),
            Attr.of("else_branch", new Graph("inner_else"))));

    assertThat(Verifier.problems(g))
        .singleElement()
        .asString()
        .contains(
            "'inner/Neg' input 0 reads 'deep_ghost'",
            "graph 'inner' (attribute 'then_branch' of node 'If_inner' in graph 'then'"
                + " (attribute 'then_branch' of node 'If_0' in graph 'main'))");
  }

  @Test
  void functionBodiesAreVerified() {
    Model m = new Model(mlp());
    Graph body = functionBody();
    find(body, "Double/Add").setInput(1, new Value("not_a_parameter", F2));
    m.functions().add(new Function("local", "Double", body));

    assertThat(Verifier.problems(m))
        .singleElement()
        .asString()
        .startsWith("Node 'Double/Add' input 1 reads 'not_a_parameter', which no node, input or"
            + " initializer of function 'local::Double' defines.");
  }

  @Test
  void functionBodiesDoNotSeeTheMainGraph() {
    Model m = new Model(mlp());
    Graph body = functionBody();
    find(body, "Double/Add").setInput(1, m.graph().value("x").orElseThrow());
    m.functions().add(new Function("local", "Double", body));

    assertThat(Verifier.problems(m))
        .singleElement()
        .asString()
        .contains("'Double/Add' input 1 reads 'x'", "It belongs to graph 'main', which is out of scope");
  }

  @Test
  void verifyThrowsListingEveryProblem() {
    Graph g = mlp();
    g.setOutput(0, new Value("nowhere", F2));
    g.setInitializer(g.initializer("b").orElseThrow(), null);

    assertThatThrownBy(() -> Verifier.verify(g))
        .isInstanceOf(IrVerificationException.class)
        .hasMessageStartingWith("Graph 'main' fails verification with 2 problems:")
        .hasMessageContaining("'nowhere'")
        .hasMessageContaining("Initializer 'b'")
        .satisfies(e -> assertThat(((IrVerificationException) e).problems()).hasSize(2));
    assertThatThrownBy(() -> Verifier.verify(new Model(g)))
        .isInstanceOf(IrVerificationException.class)
        .hasMessageStartingWith("Model 'main' fails verification with 2 problems:");
  }

  // ---- cost ---------------------------------------------------------------------------------------

  @Test
  void verificationIsLinearInGraphSize() {
    // 40,000 nodes all reading one value: a per-slot scan of that value's uses would take 1.6e9
    // steps; counting uses once per value keeps it linear.
    Graph g = new Graph("wide");
    Value x = g.addInput("x", F2);
    Value prev = x;
    for (int i = 0; i < 40_000; i++) {
      Node n = g.addNode(node("Add", "v" + i, "Add_" + i, prev, x));
      prev = n.output();
    }
    g.addOutput(prev);
    assertTimeoutPreemptively(
        Duration.ofSeconds(10), () -> assertThat(Verifier.problems(g)).isEmpty());
  }

  /** A function body {@code out = Add(in, in)}. */
  private static Graph functionBody() {
    Graph body = new Graph("Double");
    Value in = body.addInput("in", F2);
    Node add = body.addNode(node("Add", "out", "Double/Add", in, in));
    body.addOutput(add.output());
    return body;
  }
}
