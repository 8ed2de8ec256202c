package dev.graft.trainer.eval;

import static com.google.common.base.Preconditions.checkArgument;

import java.util.Locale;
import java.util.Set;
import java.util.function.IntFunction;

/**
 * How well embeddings retrieve: each query ranks the corpus by cosine similarity; recall@k is the
 * share of queries with a relevant item among the top k, MRR the mean of 1 / (rank of the first
 * relevant item). Ties rank the query's relevant item after the others (the pessimistic order),
 * so a constant embedding scores no better than chance.
 */
public record RetrievalMetrics(int queries, double recallAt1, double recallAt10, double mrr) {

  /**
   * @param queries query embeddings
   * @param corpus corpus embeddings
   * @param relevant the corpus indices relevant to query i
   * @param excluded the corpus index query i may not retrieve (itself, when queries are the corpus), or -1
   */
  public static RetrievalMetrics of(
      float[][] queries, float[][] corpus, IntFunction<Set<Integer>> relevant, IntFunction<Integer> excluded) {
    checkArgument(queries.length > 0 && corpus.length > 0, "retrieval needs queries and a corpus");
    float[][] q = normalized(queries);
    float[][] c = normalized(corpus);
    double r1 = 0;
    double r10 = 0;
    double mrr = 0;
    for (int i = 0; i < q.length; i++) {
      Set<Integer> rel = relevant.apply(i);
      int skip = excluded.apply(i);
      double best = Double.NEGATIVE_INFINITY;
      for (int j : rel) if (j != skip) best = Math.max(best, dot(q[i], c[j]));
      if (best == Double.NEGATIVE_INFINITY) continue;
      // Rank of the best relevant item: 1 + items scoring at least as high that are not relevant.
      int rank = 1;
      for (int j = 0; j < c.length; j++) {
        if (j == skip || rel.contains(j)) continue;
        if (dot(q[i], c[j]) >= best) rank++;
      }
      if (rank <= 1) r1++;
      if (rank <= 10) r10++;
      mrr += 1.0 / rank;
    }
    return new RetrievalMetrics(q.length, r1 / q.length, r10 / q.length, mrr / q.length);
  }

  /**
   * The accuracy of the nearest-centroid classifier: each test embedding takes the label whose
   * training centroid (of unit embeddings) is most cosine-similar.
   */
  public static double nearestCentroidAccuracy(
      float[][] train, int[] trainLabels, float[][] test, int[] testLabels, int classes) {
    float[][] t = normalized(train);
    int d = t[0].length;
    float[][] centroids = new float[classes][d];
    for (int i = 0; i < t.length; i++) for (int k = 0; k < d; k++) centroids[trainLabels[i]][k] += t[i][k];
    float[][] cn = normalized(centroids);
    float[][] x = normalized(test);
    int right = 0;
    for (int i = 0; i < x.length; i++) {
      int arg = 0;
      for (int c = 1; c < classes; c++) if (dot(x[i], cn[c]) > dot(x[i], cn[arg])) arg = c;
      if (arg == testLabels[i]) right++;
    }
    return right / (double) x.length;
  }

  static float[][] normalized(float[][] v) {
    float[][] out = new float[v.length][];
    for (int i = 0; i < v.length; i++) {
      double n = Math.sqrt(dot(v[i], v[i]));
      out[i] = new float[v[i].length];
      for (int k = 0; k < v[i].length; k++) out[i][k] = (float) (n == 0 ? 0 : v[i][k] / n);
    }
    return out;
  }

  static double dot(float[] a, float[] b) {
    double s = 0;
    for (int k = 0; k < a.length; k++) s += a[k] * (double) b[k];
    return s;
  }

  @Override
  public String toString() {
    return String.format(Locale.ROOT, "%d queries: recall@1 %.4f, recall@10 %.4f, MRR %.4f", queries, recallAt1, recallAt10, mrr);
  }
}
