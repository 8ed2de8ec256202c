package dev.graft.trainer.task;

import static com.google.common.base.Preconditions.checkArgument;

/**
 * The options of the registered tasks, as {@code graft train} takes them; each task reads its own.
 *
 * @param head the head a task adds to a model that lacks its output ({@code --head})
 * @param seed seeds the head's initial weights and the embed task's pairing
 * @param huberDelta regress: 0 for the mean squared error, else the Huber loss's delta ({@code --huber})
 * @param scale embed: the multiple-negatives ranking loss's similarity scale ({@code --scale}, 20 as in
 *     sentence-transformers)
 * @param pairColumn embed: the column holding each text's positive ({@code --pair-column}); "" to form
 *     pairs within a label instead (SetFit)
 */
public record TaskOptions(HeadKind head, long seed, double huberDelta, double scale, String pairColumn) {
  public TaskOptions {
    checkArgument(huberDelta >= 0, "the Huber delta must not be negative, got %s", huberDelta);
    checkArgument(scale > 0, "the similarity scale must be positive, got %s", scale);
  }

  public static TaskOptions defaults() {
    return new TaskOptions(HeadKind.MEAN, 42, 0, 20, "");
  }

  public TaskOptions withHead(HeadKind h) {
    return new TaskOptions(h, seed, huberDelta, scale, pairColumn);
  }

  public TaskOptions withSeed(long s) {
    return new TaskOptions(head, s, huberDelta, scale, pairColumn);
  }

  public TaskOptions withHuberDelta(double d) {
    return new TaskOptions(head, seed, d, scale, pairColumn);
  }

  public TaskOptions withPairColumn(String column) {
    return new TaskOptions(head, seed, huberDelta, scale, column);
  }

  public TaskOptions withScale(double s) {
    return new TaskOptions(head, seed, huberDelta, s, pairColumn);
  }
}
