package dev.graft.trainer.task;

import dev.graft.trainer.train.EvalResult;

/**
 * The held-out loss a task reports: the mean of its eval steps' losses, each weighted by its batch
 * size (a step's loss is its batch's mean, and the last batch may be smaller).
 */
final class MeanLoss {
  private double sum;
  private long count;

  /** Adds one eval step over {@code size} examples. */
  void add(EvalResult r, int size) {
    sum += r.loss() * size;
    count += size;
  }

  /** The mean over every example added; 0 when none was. */
  double mean() {
    return sum / Math.max(1, count);
  }
}
