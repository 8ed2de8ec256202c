package dev.graft.ir;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.graft.ir.analysis.Verifier;
import dev.graft.ir.build.GraphBuilder;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The IR's use-def invariants, checked by the Verifier after every mutation. */
class GraphMutationTest {

  private static Graph chain() {
    GraphBuilder b = GraphBuilder.create("g");
    Value x = b.input("x", DataType.FLOAT, "batch", 4);
    Value r = b.op("Relu", x);
    Value e = b.op("Exp", r);
    Value y = b.op("Add", r, e);
    b.output(y);
    return b.graph();
  }

  private static Node node(Graph g, String op) {
    return g.nodes().stream().filter(n -> n.opType().equals(op)).findFirst().orElseThrow();
  }

  @Test
  void setInputMovesTheUseFromOldToNewValue() {
    Graph g = chain();
    Node add = node(g, "Add");
    Value x = g.value("x").orElseThrow();
    Value r = node(g, "Relu").output();
    add.setInput(0, x);
    assertThat(r.uses()).extracting(Use::node).containsExactly(node(g, "Exp"));
    assertThat(x.uses()).contains(new Use(add, 0));
    Verifier.verify(g);
  }

  @Test
  void replaceAllUsesWithRewiresEveryReaderButNotGraphOutputsUnlessAsked() {
    Graph g = chain();
    Value x = g.value("x").orElseThrow();
    Value r = node(g, "Relu").output();
    r.replaceAllUsesWith(x);
    assertThat(r.hasUses()).isFalse();
    assertThat(x.uses()).hasSize(3);
    Verifier.verify(g);

    Value y = g.outputs().get(0);
    Node neg = g.addNode(new Node("", "Neg", List.of(y), List.of("negy"), List.of(), "neg"));
    y.replaceAllUsesWith(neg.output(), true);
    // The Neg node's own read of y is a use too; it now reads itself: exactly the cycle a
    // careless rewrite makes, and the Verifier must catch it.
    assertThat(Verifier.problems(g)).anyMatch(p -> p.toLowerCase().contains("cycle"));
    neg.setInput(0, y);
    assertThat(g.outputs()).containsExactly(neg.output());
    Verifier.verify(g);
  }

  @Test
  void soleReaderIsTheOneNodeThatReadsAValueNotAGraphOutput() {
    Graph g = chain();
    assertThat(node(g, "Exp").output().soleReader()).contains(node(g, "Add"));
    assertThat(node(g, "Relu").output().soleReader()).isEmpty(); // read by Exp and Add
    assertThat(node(g, "Add").output().soleReader()).isEmpty(); // a graph output, read by no node
    Node neg = g.addNode(new Node("", "Neg", List.of(node(g, "Add").output()), List.of("negy"), List.of(), "neg"));
    assertThat(node(g, "Add").output().soleReader()).isEmpty(); // one reader, but still a graph output
    assertThat(neg.output().soleReader()).isEmpty();
  }

  @Test
  void removeUnreadDropsWhatNothingReadsUpwardsAndKeepsTheRest() {
    // y = Add(r, Reshape(r, Concat(Shape(r), k))) with k an initializer; the Reshape's output then
    // loses its reader: the Reshape, Concat, Shape and k go, r (still read by the Add) stays.
    GraphBuilder b = GraphBuilder.create("g");
    Value x = b.input("x", DataType.FLOAT, "batch", 4);
    Value r = b.op("Relu", x);
    Value k = b.int64s(1);
    Value shape = b.op("Concat", List.of(b.op("Shape", r), k), Attr.of("axis", 0L));
    Value reshaped = b.op("Reshape", r, shape);
    b.output(b.op("Add", r, reshaped));
    Graph g = b.graph();
    Node add = node(g, "Add");
    add.setInput(1, r);
    int initializers = g.initializers().size();
    g.removeUnread(List.of(reshaped, x));
    assertThat(g.nodes()).extracting(Node::opType).containsExactly("Relu", "Add");
    assertThat(g.initializers()).hasSize(initializers - 1);
    assertThat(g.value("x")).isPresent();
    Verifier.verify(g);
  }

  @Test
  void removeNodeChecksFirstThenMutates() {
    Graph g = chain();
    Node relu = node(g, "Relu");
    int before = g.nodeCount();
    assertThatThrownBy(() -> g.removeNode(relu))
        .isInstanceOf(IllegalStateException.class)
        .hasMessageContaining("still used by")
        .hasMessageContaining("Rewire its uses first");
    assertThat(g.nodeCount()).isEqualTo(before);
    Verifier.verify(g);

    Node add = node(g, "Add");
    assertThatThrownBy(() -> g.removeNode(add)).hasMessageContaining("graph output");
    Verifier.verify(g);

    Node exp = node(g, "Exp");
    add.setInput(1, g.value("x").orElseThrow());
    g.removeNode(exp);
    assertThat(g.lookup(exp.output().name())).isEmpty();
    assertThat(relu.output().uses()).containsExactly(new Use(add, 0));
    Verifier.verify(g);
  }

  @Test
  void insertBeforeAndAfterKeepOrderAndNames() {
    Graph g = chain();
    Node exp = node(g, "Exp");
    Node relu = node(g, "Relu");
    Node t = new Node("", "Tanh", List.of(relu.output()), List.of(g.freshName("t")), List.of(), "tanh");
    g.insertAfter(relu, t);
    exp.setInput(0, t.output());
    assertThat(g.nodes()).extracting(Node::opType).containsExactly("Relu", "Tanh", "Exp", "Add");
    Node s = new Node("", "Sigmoid", List.of(g.value("x").orElseThrow()), List.of(g.freshName("t")), List.of(), "sig");
    g.insertBefore(relu, s);
    assertThat(g.nodes().get(0)).isSameAs(s);
    assertThat(s.output().name()).isNotEqualTo(t.output().name());
    Verifier.verify(g);

    Node clash = new Node("", "Neg", List.of(), List.of(t.output().name()), List.of(), "clash");
    assertThatThrownBy(() -> g.addNode(clash)).hasMessageContaining("already has a value named");
    Verifier.verify(g);
  }

  @Test
  void subgraphsCaptureOuterValuesAsUses() {
    GraphBuilder b = GraphBuilder.create("main");
    Value x = b.input("x", DataType.FLOAT, 2);
    Value c = b.input("c", DataType.BOOL);
    Value r = b.op("Relu", x);
    Graph then = new Graph("then");
    Node t = then.addNode(new Node("", "Neg", List.of(r), List.of("then_out"), List.of(), "neg"));
    then.addOutput(t.output());
    Graph otherwise = new Graph("else");
    Node e = otherwise.addNode(new Node("", "Identity", List.of(x), List.of("else_out"), List.of(), "id"));
    otherwise.addOutput(e.output());
    Node ifNode =
        b.graph()
            .addNode(
                new Node("", "If", List.of(c), List.of("y"),
                    List.of(Attr.of("then_branch", then), Attr.of("else_branch", otherwise)), "if"));
    b.output(ifNode.output());
    Graph g = b.graph();
    assertThat(then.outerGraph()).containsSame(g);
    assertThat(r.uses()).containsExactly(new Use(t, 0));
    assertThat(then.captures()).containsExactly(r.name());
    Verifier.verify(g);

    // The subgraph's read keeps the outer node alive.
    assertThatThrownBy(() -> g.removeNode(r.producer().orElseThrow())).hasMessageContaining("neg");
    // Names in a subgraph may not shadow the outer scope.
    assertThatThrownBy(() -> then.addNode(new Node("", "Neg", List.of(), List.of("x"), List.of(), "shadow")))
        .hasMessageContaining("already has a value named 'x'");
    Verifier.verify(g);
  }

  @Test
  void renameKeepsTheScopeConsistent() {
    Graph g = chain();
    Value r = node(g, "Relu").output();
    g.rename(r, "hidden");
    assertThat(g.value("hidden")).containsSame(r);
    assertThatThrownBy(() -> g.rename(r, "x")).hasMessageContaining("already has a value 'x'");
    Verifier.verify(g);
  }
}
