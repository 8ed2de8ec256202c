package dev.graft.ir.analysis;

import static dev.graft.ir.analysis.TestGraphs.F2;
import static dev.graft.ir.analysis.TestGraphs.mlp;
import static dev.graft.ir.analysis.TestGraphs.node;
import static dev.graft.ir.analysis.TestGraphs.withIf;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.entry;

import dev.graft.ir.Graph;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import java.util.List;
import org.junit.jupiter.api.Test;

class OpCensusTest {

  @Test
  void countsByOpMostFrequentFirstThenByName() {
    Graph g = new Graph("g");
    Value x = g.addInput("x", F2);
    Value prev = x;
    // 3 Relu, 2 Add, 2 Mul, 1 Neg, stored interleaved.
    String[] ops = {"Relu", "Neg", "Mul", "Add", "Relu", "Add", "Mul", "Relu"};
    for (int i = 0; i < ops.length; i++) {
      List<Value> ins = ops[i].equals("Add") || ops[i].equals("Mul") ? List.of(prev, x) : List.of(prev);
      prev = g.addNode(node(ops[i], "v" + i, "n" + i, ins)).output();
    }

    assertThat(OpCensus.of(g))
        .containsExactly(
            entry("Relu", 3),
            entry("Add", 2),
            entry("Mul", 2),
            entry("Neg", 1));
  }

  @Test
  void nonDefaultDomainsArePrefixedAndKeptApart() {
    Graph g = new Graph("g");
    Value x = g.addInput("x", F2);
    g.addNode(new Node("", "Gelu", List.of(x), List.of("a"), List.of(), "onnx_gelu"));
    g.addNode(new Node("ai.onnx", "Relu", List.of(x), List.of("r"), List.of(), "spelled_out"));
    g.addNode(new Node("com.microsoft", "Gelu", List.of(x), List.of("b"), List.of(), "ms1"));
    g.addNode(new Node("com.microsoft", "Gelu", List.of(x), List.of("c"), List.of(), "ms2"));

    assertThat(OpCensus.of(g))
        .containsExactly(
            entry("com.microsoft:Gelu", 2),
            entry("Gelu", 1),
            entry("Relu", 1));
  }

  @Test
  void ofCountsTopLevelNodesAndDeepCountsSubgraphsToo() {
    Graph g = withIf();
    assertThat(OpCensus.of(g))
        .containsExactly(
            entry("If", 1),
            entry("Relu", 1));
    assertThat(OpCensus.deep(g))
        .containsExactly(
            entry("Identity", 1),
            entry("If", 1),
            entry("Neg", 1),
            entry("Relu", 1));
  }

  @Test
  void theCountsAddUpToTheNodeCount() {
    Graph g = mlp();
    assertThat(OpCensus.of(g).values().stream().mapToInt(Integer::intValue).sum())
        .isEqualTo(g.nodeCount());
    assertThat(OpCensus.of(new Graph("empty"))).isEmpty();
  }
}
