package dev.graft.trainer.task;

import dev.graft.ir.Dim;
import dev.graft.ir.Graph;
import dev.graft.ir.Value;
import dev.graft.rewrite.GraphPass;
import java.util.Optional;
import java.util.function.LongFunction;

/**
 * A head a task adds on top of the recipe: the pass that adds it, and why the task adds it (the
 * model lacks the output the task reads), which the run prints with the head's parameter count.
 */
public record TaskHead(GraphPass pass, String reason) {
  /**
   * Whether the model already has the output {@code name} the task reads, so the task adds no head.
   * One whose second axis is fixed at other than {@code columns} is refused with the message
   * {@code mismatch} makes from the columns it has.
   */
  public static boolean present(Graph g, String name, long columns, LongFunction<String> mismatch) {
    Optional<Value> out = g.outputs().stream().filter(o -> o.name().equals(name)).findFirst();
    if (out.isEmpty()) return false;
    Optional<Dim> width = out.get().shape().filter(s -> s.rank() == 2).map(s -> s.dim(1));
    if (width.isPresent() && width.get().isFixed() && width.get().value() != columns) {
      throw new IllegalArgumentException(mismatch.apply(width.get().value()));
    }
    return true;
  }
}
