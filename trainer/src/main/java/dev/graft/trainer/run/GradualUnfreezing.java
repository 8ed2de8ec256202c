package dev.graft.trainer.run;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Model;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.recipe.Unfreeze;
import java.util.List;

/**
 * A recipe's {@code unfreeze:} option as the loop's per-epoch {@link TrainableSchedule}: epoch 1
 * trains the head and the top layer's trainables, each later epoch {@code layers-per-epoch} more
 * layers, the embeddings last ({@link Unfreeze#trainables}). The graph never changes; the loop
 * rebuilds its train step when the set grows.
 */
public record GradualUnfreezing(Unfreeze unfreeze) implements TrainableSchedule {
  @Override
  public ImmutableList<String> trainables(int epoch, List<String> current, Model model) {
    return unfreeze.trainables(epoch, TrainableRegistry.read(model));
  }
}
