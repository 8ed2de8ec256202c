package dev.graft.ir.analysis;

import static dev.graft.ir.analysis.TestGraphs.F2;
import static dev.graft.ir.analysis.TestGraphs.find;
import static dev.graft.ir.analysis.TestGraphs.mlp;
import static dev.graft.ir.analysis.TestGraphs.node;
import static dev.graft.ir.analysis.TestGraphs.sub;
import static dev.graft.ir.analysis.TestGraphs.withIf;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.graft.ir.Attr;
import dev.graft.ir.Graph;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

class TopologicalOrderTest {

  @Test
  void aSortedGraphKeepsItsOrderExactly() {
    Graph g = mlp();
    assertThat(TopologicalOrder.of(g)).containsExactlyElementsOf(g.nodes());
    assertThat(TopologicalOrder.sort(g)).isFalse();
  }

  @Test
  void independentNodesKeepTheirStoredOrder() {
    // Four roots, no edges: any order is topological, the stable one is the stored one.
    Graph g = new Graph("roots");
    Value x = g.addInput("x", F2);
    List<Node> stored = new ArrayList<>();
    for (String name : List.of("d", "b", "a", "c")) stored.add(g.addNode(node("Neg", name, name, x)));
    assertThat(names(TopologicalOrder.of(g))).containsExactly("d", "b", "a", "c");
  }

  @Test
  void aShuffledChainComesBackInDataOrder() {
    Graph g = new Graph("chain");
    Value x = g.addInput("x", F2);
    Value prev = x;
    List<Node> chain = new ArrayList<>();
    for (int i = 0; i < 6; i++) {
      Node n = g.addNode(node("Neg", "v" + i, "n" + i, prev));
      chain.add(n);
      prev = n.output();
    }
    List<Node> shuffled = new ArrayList<>(chain);
    Collections.shuffle(shuffled, new Random(7));
    g.reorder(shuffled);
    assertThat(g.nodes()).isNotEqualTo(chain);

    assertThat(TopologicalOrder.of(g)).containsExactlyElementsOf(chain);
  }

  @Test
  void tiesGoToTheNodeStoredFirst() {
    // Stored: c = Neg(b); a = Neg(x); b = Neg(x); d = Neg(x).
    // Ready at start: a, b, d (in stored order); a is taken first, then b, which frees c; c is
    // stored before d, so it comes next.
    Graph g = new Graph("ties");
    Value x = g.addInput("x", F2);
    Node a = node("Neg", "a", "a", x);
    Node b = node("Neg", "b", "b", x);
    Node c = node("Neg", "c", "c", b.output());
    Node d = node("Neg", "d", "d", x);
    for (Node n : List.of(a, b, c, d)) g.addNode(n);
    g.reorder(List.of(c, a, b, d));

    assertThat(names(TopologicalOrder.of(g))).containsExactly("a", "b", "c", "d");
  }

  @Test
  void randomShuffledDagsMatchANaiveStableSort() {
    for (int seed = 0; seed < 200; seed++) {
      Random rnd = new Random(seed);
      Graph g = randomDag(rnd, 5 + rnd.nextInt(40));
      List<Node> shuffled = new ArrayList<>(g.nodes());
      Collections.shuffle(shuffled, rnd);
      g.reorder(shuffled);

      List<Node> order = TopologicalOrder.of(g);
      assertThat(order).as("seed %s", seed).containsExactlyElementsOf(naiveStableOrder(g));
      assertTopological(order);
    }
  }

  @Test
  void aNodeComesAfterTheProducersOfWhatItsSubgraphsCapture() {
    Graph g = withIf();
    Node p = find(g, "P");
    Node iff = find(g, "If_0");
    g.reorder(List.of(iff, p));

    // The If has no input from P; only its then-branch reads P's output.
    assertThat(iff.inputs()).doesNotContain(p.output());
    assertThat(TopologicalOrder.of(g)).containsExactly(p, iff);
  }

  @Test
  void capturesAtAnyDepthCount() {
    Graph g = withIf();
    Graph then = sub(g, "If_0", "then_branch");
    // A node stored after the If makes %late; an If nested in the then-branch reads it.
    Node late = node("Neg", "late", "Late", g.value("x").orElseThrow());
    Graph inner = new Graph("inner");
    Node use = inner.addNode(node("Identity", "i", "inner/Identity", late.output()));
    inner.addOutput(use.output());
    Graph innerElse = new Graph("inner_else");
    Node ie = innerElse.addNode(node("Identity", "ie", "inner_else/Identity", late.output()));
    innerElse.addOutput(ie.output());
    then.addNode(
        node(
            "If",
            "t2",
            "If_inner",
            List.of(g.value("c").orElseThrow()),
            Attr.of("then_branch", inner),
            Attr.of("else_branch", innerElse)));
    g.addNode(late);
    assertThat(Verifier.problems(g)).isEmpty();

    assertThat(names(TopologicalOrder.of(g))).containsExactly("P", "Late", "If_0");
  }

  @Test
  void valuesFromOutsideTheGraphImposeNoOrder() {
    // In a subgraph, captured values and its own inputs have no producer among its nodes.
    Graph g = withIf();
    Graph then = sub(g, "If_0", "then_branch");
    assertThat(names(TopologicalOrder.of(then))).containsExactly("then/Neg");
  }

  @Test
  void aCycleThrowsNamingOnlyTheNodesOnIt() {
    Graph g = mlp();
    Node mm = find(g, "/fc/MatMul");
    Node add = find(g, "/fc/Add");
    mm.setInput(0, add.output());

    assertThatThrownBy(() -> TopologicalOrder.of(g))
        .isInstanceOf(IllegalStateException.class)
        .hasMessage(
            "Graph 'main' has a cycle: '/fc/MatMul' -> '/fc/Add' -> '/fc/MatMul'. Break it by"
                + " rewiring one of these nodes' inputs with setInput.")
        .message()
        .doesNotContain("Relu");
  }

  @Test
  void aNodeReadingItsOwnOutputIsACycle() {
    Graph g = mlp();
    Node relu = find(g, "/act/Relu");
    relu.setInput(0, relu.output());
    assertThatThrownBy(() -> TopologicalOrder.of(g))
        .hasMessageStartingWith("Graph 'main' has a cycle: '/act/Relu' -> '/act/Relu'.");
  }

  @Test
  void aCycleFoundFromADownstreamNodeStillNamesOnlyTheCycle() {
    // d is stored first and hangs below the cycle b -> c -> b; the walk starts at d.
    Graph g = new Graph("g");
    Value x = g.addInput("x", F2);
    Node a = node("Neg", "a", "a", x);
    Node b = node("Add", "b", "b", a.output(), x);
    Node c = node("Neg", "c", "c", b.output());
    Node d = node("Neg", "d", "d", c.output());
    for (Node n : List.of(d, a, b, c)) g.addNode(n);
    b.setInput(1, c.output());

    assertThatThrownBy(() -> TopologicalOrder.of(g))
        .hasMessageStartingWith("Graph 'g' has a cycle: 'b' -> 'c' -> 'b'.");
  }

  @Test
  void sortReordersInPlaceIncludingSubgraphs() {
    Graph g = withIf();
    Graph then = sub(g, "If_0", "then_branch");
    Node n2 = node("Neg", "t0", "then/First", g.value("a").orElseThrow());
    then.addNode(n2);
    Node neg = find(then, "then/Neg");
    neg.setInput(0, n2.output());
    // then: [then/Neg reads t0, then/First makes t0] is out of order; so is main after reorder.
    Node p = find(g, "P");
    Node iff = find(g, "If_0");
    g.reorder(List.of(iff, p));

    assertThat(TopologicalOrder.sort(g)).isTrue();
    assertThat(g.nodes()).containsExactly(p, iff);
    assertThat(names(then.nodes())).containsExactly("then/First", "then/Neg");
    assertThat(TopologicalOrder.sort(g)).isFalse();
    assertThat(Verifier.problems(g)).isEmpty();
  }

  @Test
  void sortChangesNothingWhenAnyGraphHasACycle() {
    Graph g = withIf();
    Node p = find(g, "P");
    Node iff = find(g, "If_0");
    g.reorder(List.of(iff, p));
    Graph otherwise = sub(g, "If_0", "else_branch");
    Node id = find(otherwise, "else/Identity");
    id.setInput(0, id.output());

    assertThatThrownBy(() -> TopologicalOrder.sort(g)).hasMessageContaining("'else/Identity'");
    assertThat(g.nodes()).containsExactly(iff, p);
  }

  @Test
  void reorderRefusesAnythingButAPermutation() {
    Graph g = mlp();
    List<Node> nodes = g.nodes();
    Node stranger = node("Neg", "s", "Stranger", new Value("q", F2));
    assertThatThrownBy(() -> g.reorder(nodes.subList(0, 2)))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("has 2 nodes, the graph has 3");
    assertThatThrownBy(() -> g.reorder(List.of(nodes.get(0), nodes.get(0), nodes.get(2))))
        .hasMessageContaining("'/fc/MatMul' appears twice");
    assertThatThrownBy(() -> g.reorder(List.of(nodes.get(0), nodes.get(1), stranger)))
        .hasMessageContaining("'Stranger' is not one of its nodes");
    assertThat(g.nodes()).containsExactlyElementsOf(nodes);
  }

  // ---- helpers ------------------------------------------------------------------------------------

  /** Nodes reading up to three random earlier values (graph inputs or node outputs). */
  private static Graph randomDag(Random rnd, int size) {
    Graph g = new Graph("dag");
    List<Value> available = new ArrayList<>();
    available.add(g.addInput("x0", F2));
    available.add(g.addInput("x1", F2));
    for (int i = 0; i < size; i++) {
      int arity = 1 + rnd.nextInt(3);
      List<Value> ins = new ArrayList<>();
      for (int k = 0; k < arity; k++) ins.add(available.get(rnd.nextInt(available.size())));
      Node n = g.addNode(node("Sum", "v" + i, "n" + i, ins));
      available.add(n.output());
    }
    return g;
  }

  /**
   * The oracle, by definition rather than by Kahn: repeatedly take the first node in stored order
   * whose inputs are all available. Quadratic, fine for tests.
   */
  private static List<Node> naiveStableOrder(Graph g) {
    List<Node> remaining = new ArrayList<>(g.nodes());
    Set<Value> available = new HashSet<>(g.inputs());
    List<Node> out = new ArrayList<>();
    while (!remaining.isEmpty()) {
      Node next =
          remaining.stream()
              .filter(n -> n.inputs().stream().allMatch(available::contains))
              .findFirst()
              .orElseThrow();
      remaining.remove(next);
      available.addAll(next.outputs());
      out.add(next);
    }
    return out;
  }

  private static void assertTopological(List<Node> order) {
    Set<Value> seen = new HashSet<>(order.get(0).graph().inputs());
    for (Node n : order) {
      assertThat(seen).containsAll(n.inputs());
      seen.addAll(n.outputs());
    }
  }

  private static List<String> names(List<Node> nodes) {
    return nodes.stream().map(Node::name).collect(Collectors.toList());
  }
}
