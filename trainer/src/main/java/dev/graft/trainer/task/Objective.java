package dev.graft.trainer.task;

import static com.google.common.base.Preconditions.checkArgument;

import dev.graft.ir.Model;
import dev.graft.trainer.train.Loss;

/**
 * What the train-step graph is built from: {@code model}, a copy of the adapted model to which
 * the task may have added outputs (the pooled sentence embedding) and inputs (a loss mask, group
 * ids), the {@code output} the loss reads, the name of the {@code labels} input the loss adds,
 * and the {@code loss}. The loss is attached here and nowhere else.
 *
 * <pre>
 *   model (batch inputs + task inputs) -> output --loss(output, labels)--> graft.loss
 * </pre>
 */
public record Objective(Model model, String output, String labels, Loss loss) {
  public static final String DEFAULT_LABELS = "labels";

  public Objective {
    checkArgument(model != null && loss != null, "an objective needs a model and a loss");
    checkArgument(!output.isEmpty() && !labels.isEmpty(), "an objective names its output and labels");
  }

  public static Objective of(Model model, String output, Loss loss) {
    return new Objective(model, output, DEFAULT_LABELS, loss);
  }
}
