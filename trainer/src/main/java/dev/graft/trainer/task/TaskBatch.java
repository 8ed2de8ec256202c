package dev.graft.trainer.task;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableMap;
import dev.graft.ir.tensor.Tensor;
import java.util.Map;

/**
 * One batch as the train-step graph takes it: a tensor for every batch input of the objective's
 * graph and for its labels, by name, and the number of examples it holds (which weights the
 * epoch's mean loss). The loop feeds {@code feeds} to the {@code Trainer} without looking inside.
 */
public record TaskBatch(ImmutableMap<String, Tensor> feeds, int size) {
  public TaskBatch {
    checkArgument(size > 0, "a batch holds at least one example, got %s", size);
    checkArgument(!feeds.isEmpty(), "a batch feeds at least one tensor");
  }

  public static TaskBatch of(Map<String, Tensor> feeds, int size) {
    return new TaskBatch(ImmutableMap.copyOf(feeds), size);
  }
}
