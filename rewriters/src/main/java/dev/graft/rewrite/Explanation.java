package dev.graft.rewrite;

import com.google.common.collect.ImmutableList;
import dev.graft.rewrite.discover.LinearModule;
import dev.graft.rewrite.discover.Module;
import dev.graft.rewrite.discover.NormModule;
import java.io.PrintWriter;
import java.util.Map;
import java.util.TreeMap;

/**
 * What a pass's targets selected and why every other candidate was refused, for {@code graft
 * rewrite --dry-run --explain}:
 *
 * <pre>
 *   lora, targets 'layer.*.attention.qury': 0 matched
 *     refused layer.0.attention.query: name does not match 'layer.*.attention.qury'
 *     refused MatMul '/encoder/layer.0/attention/self/MatMul': its weight (input 1) is not a constant ...
 *     other kinds, not adapted by lora: 6 attention, 3 embedding, 6 ffn, 13 norm, 12 residual
 * </pre>
 *
 * @param matched the modules the pass would adapt
 * @param refused each module or graph node the pass did not take, with the reason
 */
public record Explanation(String pass, String targets, ImmutableList<String> matched, ImmutableList<Refusal> refused) {

  /**
   * One refused candidate.
   *
   * @param candidate a module name, or an op and node name for a node discovery did not take
   * @param reason why
   * @param nearMiss false when the candidate is of another kind than the pass adapts
   * @param kind the candidate's kind ("linear", "norm", "attention") or op
   */
  public record Refusal(String candidate, String reason, boolean nearMiss, String kind) {}

  /** Prints the explanation: matches, near misses one per line, other kinds counted. */
  public void print(PrintWriter out) {
    out.println(pass + ", targets '" + targets + "': " + matched.size() + " matched");
    for (String m : matched) out.println("  matched " + m);
    Map<String, Integer> otherKinds = new TreeMap<>();
    for (Refusal r : refused) {
      if (r.nearMiss()) {
        out.println("  refused " + r.candidate() + ": " + r.reason());
      } else {
        otherKinds.merge(r.kind(), 1, Integer::sum);
      }
    }
    if (!otherKinds.isEmpty()) {
      StringBuilder b = new StringBuilder("  other kinds, not adapted by " + pass + ":");
      otherKinds.forEach((k, n) -> b.append(' ').append(n).append(' ').append(k).append(','));
      b.setLength(b.length() - 1);
      out.println(b);
    }
  }

  /** "linear", "norm", "attention". */
  static String kind(Module m) {
    return m.kind().name().toLowerCase(java.util.Locale.ROOT).replace('_', '-');
  }

  /** "a linear module [384 -> 1536]", "a norm module", for refusals by kind. */
  static String what(Module m) {
    String kind = kind(m);
    String article = "aeiou".indexOf(kind.charAt(0)) >= 0 ? "an " : "a ";
    if (m instanceof LinearModule l) return article + kind + " module [" + l.inFeatures() + " -> " + l.outFeatures() + "]";
    if (m instanceof NormModule n) return article + kind + " module (" + n.style().name().toLowerCase(java.util.Locale.ROOT) + ")";
    return article + kind + " module";
  }
}
