package dev.graft.trainer.run;

import static com.google.common.base.Preconditions.checkArgument;

import dev.graft.trainer.train.Device;
import java.nio.file.Path;
import java.util.List;

/**
 * Everything a text-classification fine-tuning run needs besides the model and the passes.
 *
 * @param train training data files (CSV, TSV, JSONL or JSON; several are concatenated)
 * @param test held-out data files; empty means a stratified split of {@code train}
 * @param testFraction the held-out share when {@code test} is empty
 * @param tokenizer the model's tokenizer.json
 * @param out the run folder: tuned.onnx, metrics.jsonl, checkpoint, plot
 * @param resume continue from the checkpoint in {@code out} instead of starting afresh
 * @param stopAfterEpoch stop once this epoch is done (0: run all), keeping the schedule of the
 *     whole run, so that a long run can be split into parts joined with {@code resume}
 */
public record RunConfig(
    List<Path> train,
    List<Path> test,
    double testFraction,
    String textColumn,
    String labelColumn,
    Path tokenizer,
    int maxLength,
    int batchSize,
    int epochs,
    double learningRate,
    double warmupFraction,
    double weightDecay,
    double clipGradNorm,
    long seed,
    Device device,
    int threads,
    Path out,
    boolean resume,
    int stopAfterEpoch) {

  public RunConfig {
    checkArgument(!train.isEmpty(), "no training data given");
    checkArgument(testFraction > 0 && testFraction < 1, "test fraction must be in (0, 1), got %s", testFraction);
    checkArgument(maxLength >= 8, "max length must be at least 8 tokens, got %s", maxLength);
    checkArgument(batchSize >= 1, "batch size must be at least 1, got %s", batchSize);
    checkArgument(epochs >= 1, "epochs must be at least 1, got %s", epochs);
    checkArgument(learningRate > 0, "learning rate must be positive, got %s", learningRate);
    checkArgument(warmupFraction >= 0 && warmupFraction < 1, "warm-up fraction must be in [0, 1), got %s", warmupFraction);
    checkArgument(threads >= 0, "threads must be >= 0, got %s", threads);
    checkArgument(stopAfterEpoch >= 0, "stop-after epoch must be >= 0, got %s", stopAfterEpoch);
    train = List.copyOf(train);
    test = List.copyOf(test);
  }

}
