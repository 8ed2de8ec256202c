package dev.graft.ir.analysis;

import com.google.common.collect.ImmutableMap;
import dev.graft.ir.Graph;
import dev.graft.ir.Node;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * How many nodes of each operator a graph has: {@code {MatMul=96, Add=89, ...}}.
 *
 * <p>Keys are the op type, prefixed by {@code "domain:"} only outside the default ONNX domain
 * ({@code "com.microsoft:Attention"}), so two ops of the same name in different domains stay apart.
 * Entries are ordered by count, most frequent first, then by key, so printed censuses are stable.
 */
public final class OpCensus {
  private OpCensus() {}

  /** The census of {@code g}'s own nodes; nodes inside subgraphs are not counted. */
  public static ImmutableMap<String, Integer> of(Graph g) {
    return count(g.nodes());
  }

  /** The census of {@code g}'s nodes and of every node in its subgraphs, at any depth. */
  public static ImmutableMap<String, Integer> deep(Graph g) {
    return count(g.allNodes());
  }

  /** The census key of a node: its op type, with "domain:" before it outside the default domain. */
  public static String key(Node n) {
    return n.domain().isEmpty() ? n.opType() : n.domain() + ":" + n.opType();
  }

  private static ImmutableMap<String, Integer> count(List<Node> nodes) {
    Map<String, Integer> counts = new HashMap<>();
    for (Node n : nodes) counts.merge(key(n), 1, Integer::sum);
    List<Map.Entry<String, Integer>> entries = new ArrayList<>(counts.entrySet());
    entries.sort(
        Map.Entry.<String, Integer>comparingByValue()
            .reversed()
            .thenComparing(Map.Entry.comparingByKey()));
    ImmutableMap.Builder<String, Integer> b = ImmutableMap.builderWithExpectedSize(entries.size());
    for (Map.Entry<String, Integer> e : entries) b.put(e);
    return b.build();
  }
}
