package dev.graft.rewrite;

import dev.graft.ir.Model;

/**
 * A pass whose dry run is its run stopped before the first edit: one procedure, {@link #execute},
 * plans (discover, skip what the {@link TrainableRegistry} says is done, count the changes and
 * parameters) and then, unless {@code dry}, edits. Plan and run cannot disagree, since they are
 * the same code up to the first edit; {@link #run} and {@link #dryRun} only choose the flag.
 */
public interface PlannedPass extends GraphPass {
  /** Plans the pass on {@code model} and, unless {@code dry}, applies it in place. */
  PassResult execute(Model model, boolean dry);

  @Override
  default PassResult run(Model model) {
    return execute(model, false);
  }

  @Override
  default PassResult dryRun(Model model) {
    return execute(model, true);
  }
}
