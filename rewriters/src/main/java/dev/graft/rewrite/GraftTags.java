package dev.graft.rewrite;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.base.Strings;
import dev.graft.ir.Node;
import dev.graft.ir.Use;
import dev.graft.ir.Value;
import java.util.Optional;

/**
 * Marks the nodes a Graft pass inserts, so that discovery, later passes, the trainer and the
 * exporter can tell them from the model's own nodes: the node's doc string reads {@code
 * graft:<method>:<module>:<role>}, e.g. {@code graft:lora:layer.0.attention.query:merge}. Doc
 * strings survive a save and load unchanged and no runtime reads them.
 *
 * <p>A node with role {@value #MERGE} wraps an original value: it reads that value at input 0
 * and its output replaces the value for every former reader ({@code Add(MatMul(x, W), delta)}
 * for LoRA, {@code Mul(gamma, 1 + dgamma)} for LayerNorm-affine). {@link #origin} and {@link
 * #throughMerges} walk across such nodes, so discovery finds the same modules before and after a
 * pass.
 */
public final class GraftTags {
  public static final String PREFIX = "graft:";
  /** The role of a node that wraps the value at its input 0. */
  public static final String MERGE = "merge";

  private GraftTags() {}

  /** Tags {@code n} as made by {@code method} for {@code module} in the given role. */
  public static Node tag(Node n, String method, String module, String role) {
    checkArgument(
        !method.contains(":") && !module.contains(":") && !role.contains(":"),
        "Graft tags may not contain ':': method '%s', module '%s', role '%s'",
        method,
        module,
        role);
    n.setDocString(PREFIX + method + ":" + module + ":" + role);
    return n;
  }

  public static boolean isGraft(Node n) {
    return Strings.nullToEmpty(n.docString()).startsWith(PREFIX);
  }

  /** The method that made {@code n}, if Graft made it. */
  public static Optional<String> method(Node n) {
    return part(n, 0);
  }

  /** The module {@code n} was made for, if Graft made it. */
  public static Optional<String> module(Node n) {
    return part(n, 1);
  }

  public static Optional<String> role(Node n) {
    return part(n, 2);
  }

  public static boolean isMerge(Node n) {
    return role(n).filter(MERGE::equals).isPresent();
  }

  private static Optional<String> part(Node n, int i) {
    if (!isGraft(n)) return Optional.empty();
    String[] parts = n.docString().substring(PREFIX.length()).split(":", -1);
    return i < parts.length ? Optional.of(parts[i]) : Optional.empty();
  }

  /** The original value behind merge nodes: follows input 0 while a merge node produces it. */
  public static Value origin(Value v) {
    Value x = v;
    while (x != null && x.producer().isPresent() && isMerge(x.producer().get())) {
      x = x.producer().get().input(0);
    }
    return x;
  }

  /**
   * The value that stands for {@code v} after merges: while one merge node reads {@code v} at
   * input 0 and every other reader of {@code v} is a Graft node (an adapter branch that reads the
   * value it wraps, as a sequential adapter does), that merge's output.
   */
  public static Value throughMerges(Value v) {
    Value x = v;
    while (true) {
      Node merge = null;
      for (Use u : x.uses()) {
        if (u.index() == 0 && isMerge(u.node()) && merge == null) {
          merge = u.node();
        } else if (!isGraft(u.node()) || (u.index() == 0 && isMerge(u.node()))) {
          return x;
        }
      }
      if (merge == null) return x;
      x = merge.output();
    }
  }
}
