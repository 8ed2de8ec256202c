package dev.graft.ir.analysis;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.io.ModelIO;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The analysis tools on a real exported model, all-MiniLM-L6-v2 (6 layers, hidden 384, opset 11,
 * LayerNorm decomposed, GELU through Erf). Expected counts follow from that architecture.
 */
class MiniLmAnalysisTest {
  private static Model model;

  @BeforeAll
  static void load(@TempDir Path dir) throws IOException {
    try (InputStream in = MiniLmAnalysisTest.class.getResourceAsStream("/all-minilm-l6-v2.onnx")) {
      assertThat(in).as("all-minilm-l6-v2.onnx on the test classpath").isNotNull();
      model = ModelIO.fromBytes(in.readAllBytes(), dir);
    }
  }

  @Test
  void theLoadedModelVerifies() {
    assertThat(Verifier.problems(model)).isEmpty();
  }

  @Test
  void theExportersOrderIsAlreadyTopologicalAndSurvivesAShuffle() {
    Graph g = model.graph();
    List<Node> stored = g.nodes();
    assertThat(TopologicalOrder.of(g)).containsExactlyElementsOf(stored);

    List<Node> shuffled = new ArrayList<>(stored);
    Collections.shuffle(shuffled, new Random(1));
    g.reorder(shuffled);
    try {
      List<Node> order = TopologicalOrder.of(g);
      assertThat(order).containsExactlyInAnyOrderElementsOf(stored);
      // Every input is made before it is read.
      java.util.Set<dev.graft.ir.Value> made = new java.util.HashSet<>(g.inputs());
      made.addAll(g.initializers());
      for (Node n : order) {
        for (dev.graft.ir.Value v : n.inputs()) {
          if (v != null) assertThat(made).as("input %s of %s", v.name(), n).contains(v);
        }
        made.addAll(n.outputs());
      }
      assertThat(Verifier.problems(g)).isEmpty();
    } finally {
      g.reorder(stored);
    }
  }

  @Test
  void theCensusReflectsSixLayersWithThirteenLayerNorms() {
    Map<String, Integer> census = OpCensus.of(model.graph());
    assertThat(census.values().stream().mapToInt(Integer::intValue).sum())
        .isEqualTo(model.graph().nodeCount());
    assertThat(census).containsEntry("Erf", 6).containsEntry("Softmax", 6);
    // One LayerNorm after the embeddings and two per layer, each with one Sqrt and two ReduceMeans.
    assertThat(census).containsEntry("Sqrt", 13).containsEntry("ReduceMean", 26);
    assertThat(OpCensus.deep(model.graph())).isEqualTo(census); // no subgraphs
  }

  @Test
  void thePrintoutHasAHeaderTheParameterCountAndOneLinePerNode() {
    String text = GraphPrinter.print(model.graph());
    String[] lines = text.split("\n");
    assertThat(lines[0])
        .startsWith("graph ")
        .contains("input_ids: int64[", "attention_mask: int64[", "token_type_ids: int64[")
        .containsPattern("-> \\(last_hidden_state: float\\[[^,]+,[^,]+,384\\]\\)$");
    // BERT parameters in closed form (vocabulary 30522, 512 positions, 2 token types, hidden 384,
    // FFN 1536, 6 layers, no pooler), plus the exporter's int64[1,512] position_ids buffer.
    long h = 384;
    long ffn = 1536;
    long embeddings = 30522 * h + 512 * h + 2 * h + 2 * h;
    long layer = 4 * (h * h + h) + 2 * h + (h * ffn + ffn) + (ffn * h + h) + 2 * h;
    long parameters = embeddings + 6 * layer + 512;
    assertThat(model.graph().initializers())
        .anySatisfy(
            v -> {
              assertThat(v.initializer().orElseThrow().dataType())
                  .isEqualTo(dev.graft.ir.DataType.INT64);
              assertThat(v.initializer().orElseThrow().dims()).containsExactly(1L, 512L);
            });
    assertThat(lines[1])
        .isEqualTo(
            String.format(
                java.util.Locale.ROOT,
                "  initializers: %d (%,d parameters)",
                model.graph().initializers().size(),
                parameters));
    assertThat(lines).hasSize(2 + model.graph().nodeCount());
  }
}
