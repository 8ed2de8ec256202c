package dev.graft.trainer.task;

import static com.google.common.base.Preconditions.checkArgument;

import dev.graft.trainer.data.BatchOrder;
import dev.graft.trainer.data.Batcher;
import java.nio.file.Path;
import java.util.List;

/**
 * Where a task's data comes from and how it is cut, the part of a run's configuration that tasks
 * read.
 *
 * @param train training data files (several are concatenated)
 * @param test held-out data files; empty means the task splits {@code testFraction} off {@code train}
 * @param textColumn the text column (key, for JSON)
 * @param labelColumn the label column: class names, numbers, or for pair data the second text
 * @param tokenizer the model's tokenizer.json (text tasks)
 * @param maxLength tokens per sequence at most
 * @param out the run folder, where a task writes the split it made ({@code test-split.jsonl})
 * @param lengthBuckets 0 for shuffled training batches, else length-bucketed ones over pools of this
 *     many batches ({@link BatchOrder}, {@code --bucket-by-length})
 */
public record DataConfig(
    List<Path> train,
    List<Path> test,
    double testFraction,
    String textColumn,
    String labelColumn,
    Path tokenizer,
    int maxLength,
    int batchSize,
    long seed,
    Path out,
    int lengthBuckets) {
  /** The held-out split, written when the task made it from the training data. */
  public static final String TEST_SPLIT = "test-split.jsonl";

  public DataConfig {
    checkArgument(!train.isEmpty(), "no training data given");
    checkArgument(testFraction > 0 && testFraction < 1, "test fraction must be in (0, 1), got %s", testFraction);
    checkArgument(batchSize >= 1, "batch size must be at least 1, got %s", batchSize);
    checkArgument(lengthBuckets >= 0, "the length-bucket pool must be 0 (off) or a number of batches, got %s", lengthBuckets);
    train = List.copyOf(train);
    test = List.copyOf(test);
  }

  /** Shuffled training batches (no length buckets). */
  public DataConfig(
      List<Path> train, List<Path> test, double testFraction, String textColumn, String labelColumn, Path tokenizer,
      int maxLength, int batchSize, long seed, Path out) {
    this(train, test, testFraction, textColumn, labelColumn, tokenizer, maxLength, batchSize, seed, out, 0);
  }

  /** How the task draws an epoch's training batches from {@code batcher}. */
  public BatchOrder batchOrder(Batcher batcher) {
    return BatchOrder.of(batcher, lengthBuckets);
  }
}
