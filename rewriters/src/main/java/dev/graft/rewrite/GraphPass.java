package dev.graft.rewrite;

import dev.graft.ir.Model;

/**
 * A transformation of a model. Passes are idempotent (a second run reports no change), count the
 * parameters they add, record what they make trainable in the model ({@link TrainableRegistry}),
 * and can say what they would do without doing it. Most passes are a {@link PlannedPass}: one
 * procedure that stops before its first edit when dry.
 */
public interface GraphPass {
  /** A short stable name: "lora", "layernorm-affine", "classification-head". */
  String name();

  /** Applies the pass to {@code model}, in place. */
  PassResult run(Model model);

  /** Reports what {@link #run} would change, leaving {@code model} untouched. */
  PassResult dryRun(Model model);
}
