package dev.graft.trainer.run;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Model;
import java.util.List;

/**
 * Per-epoch changes of what trains within a stage, such as gradual unfreezing (ULMFiT: the top
 * layer's adapters first, one more layer each epoch). Before every epoch the loop asks for the
 * trainable set; when it differs from the current one, the loop writes the trained values into the
 * model, builds the train-step graph for the new set and trains on with fresh AdamW moments on
 * the rest of the stage's schedule (the learning rate continues where it was).
 *
 * <p>A run with a schedule that changes the set cannot {@code --resume}: the checkpoint holds the
 * set of the epoch it was written in.
 */
@FunctionalInterface
public interface TrainableSchedule {
  /** Trains the same set every epoch. */
  TrainableSchedule FIXED = (epoch, current, model) -> ImmutableList.copyOf(current);

  /**
   * The initializer names to train in {@code epoch} (1-based within the stage), given the set
   * trained so far and the model with the values trained so far. Every name must be a FLOAT
   * initializer of {@code model}.
   */
  ImmutableList<String> trainables(int epoch, List<String> current, Model model);
}
