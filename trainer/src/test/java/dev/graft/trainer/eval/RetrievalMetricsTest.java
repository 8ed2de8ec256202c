package dev.graft.trainer.eval;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import java.util.Set;
import org.junit.jupiter.api.Test;

/** Recall@k, MRR and the nearest-centroid accuracy on cases small enough to rank by hand. */
class RetrievalMetricsTest {
  @Test
  void ranksByCosineAndCountsTiesAgainstTheQuery() {
    // Query 0 points at corpus 0 exactly; query 1 is nearer corpus 0 than its own corpus 1 (rank 2);
    // query 2 is orthogonal to everything, so every item ties and its own ranks last (3).
    float[][] q = {{1, 0, 0}, {1, 0.2f, 0}, {0, 0, 1}};
    float[][] c = {{2, 0, 0}, {0, 1, 0}, {0, -1, 0}};
    RetrievalMetrics m = RetrievalMetrics.of(q, c, i -> Set.of(i), i -> -1);
    assertThat(m.recallAt1()).isCloseTo(1 / 3.0, within(1e-12));
    assertThat(m.recallAt10()).isCloseTo(1, within(1e-12));
    assertThat(m.mrr()).isCloseTo((1 + 1 / 2.0 + 1 / 3.0) / 3, within(1e-12));
  }

  @Test
  void withinACorpusTheQueryItselfIsSkipped() {
    float[][] x = {{1, 0}, {0.9f, 0.1f}, {0, 1}, {0.1f, 0.9f}};
    int[] label = {0, 0, 1, 1};
    RetrievalMetrics m =
        RetrievalMetrics.of(x, x, i -> label[i] == 0 ? Set.of(0, 1) : Set.of(2, 3), i -> i);
    assertThat(m.recallAt1()).isEqualTo(1);
    assertThat(m.mrr()).isEqualTo(1);
    assertThat(RetrievalMetrics.nearestCentroidAccuracy(x, label, new float[][] {{1, 0.2f}, {0.6f, 0.5f}}, new int[] {0, 1}, 2))
        .isEqualTo(0.5);
  }
}
