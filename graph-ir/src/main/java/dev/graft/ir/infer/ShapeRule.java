package dev.graft.ir.infer;

/**
 * How one operator family types its outputs: reads what is known about the node's inputs through
 * the {@link InferenceContext} and sets what follows for its outputs. A rule that lacks the facts
 * it needs (an input of unknown rank, an axes input that is not constant) sets less, or nothing;
 * it never guesses. A rule that finds the node inconsistent (a fixed 3 multiplied against a fixed
 * 4) throws {@link InferenceContext#error}.
 *
 * <p>Rules live in one table, {@link ShapeRules#RULES}, keyed by op type.
 */
@FunctionalInterface
public interface ShapeRule {
  void infer(InferenceContext c);
}
