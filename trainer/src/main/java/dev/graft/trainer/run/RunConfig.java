package dev.graft.trainer.run;

import static com.google.common.base.Preconditions.checkArgument;

import dev.graft.trainer.task.DataConfig;
import dev.graft.trainer.train.Device;
import java.nio.file.Path;
import java.util.List;

/**
 * Everything a fine-tuning run needs besides the model, the recipe and the task. {@link
 * #builder} starts from the CLI's defaults.
 *
 * @param train training data files (CSV, TSV, JSONL or JSON; several are concatenated)
 * @param test held-out data files; empty means a split of {@code train}
 * @param testFraction the held-out share when {@code test} is empty
 * @param tokenizer the model's tokenizer.json
 * @param out the run folder: tuned.onnx, metrics.jsonl, checkpoint, plot
 * @param resume continue from the checkpoint in {@code out} instead of starting afresh
 * @param stopAfterEpoch stop once this epoch is done (0: run all), keeping the schedule of the
 *     whole run, so that a long run can be split into parts joined with {@code resume}
 * @param checkpointEvery also write the checkpoint every this many steps (0: only after each
 *     epoch), so that a killed run loses at most that many steps on {@code resume}
 * @param lengthBuckets 0 for shuffled training batches, else batches of similar length drawn from
 *     pools of this many batches ({@code --bucket-by-length}; {@link dev.graft.trainer.data.BatchOrder})
 * @param unpad train padding-free where the model has an {@code attention_mask} input ({@link
 *     dev.graft.trainer.train.Unpadding}; {@code --no-unpad} turns it off)
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
    int stopAfterEpoch,
    int checkpointEvery,
    int lengthBuckets,
    boolean unpad) {

  /** Steps between checkpoints unless told otherwise. */
  public static final int DEFAULT_CHECKPOINT_EVERY = 50;

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
    checkArgument(checkpointEvery >= 0, "checkpoint interval must be >= 0 steps, got %s", checkpointEvery);
    checkArgument(lengthBuckets >= 0, "the length-bucket pool must be 0 (off) or a number of batches, got %s", lengthBuckets);
    train = List.copyOf(train);
    test = List.copyOf(test);
  }

  /** The configuration as it was before padding-free training, which is on by default. */
  public RunConfig(
      List<Path> train, List<Path> test, double testFraction, String textColumn, String labelColumn,
      Path tokenizer, int maxLength, int batchSize, int epochs, double learningRate, double warmupFraction,
      double weightDecay, double clipGradNorm, long seed, Device device, int threads, Path out, boolean resume,
      int stopAfterEpoch, int checkpointEvery, int lengthBuckets) {
    this(train, test, testFraction, textColumn, labelColumn, tokenizer, maxLength, batchSize, epochs, learningRate,
        warmupFraction, weightDecay, clipGradNorm, seed, device, threads, out, resume, stopAfterEpoch,
        checkpointEvery, lengthBuckets, true);
  }

  /** The configuration as it was before length buckets: shuffled batches. */
  public RunConfig(
      List<Path> train, List<Path> test, double testFraction, String textColumn, String labelColumn,
      Path tokenizer, int maxLength, int batchSize, int epochs, double learningRate, double warmupFraction,
      double weightDecay, double clipGradNorm, long seed, Device device, int threads, Path out, boolean resume,
      int stopAfterEpoch, int checkpointEvery) {
    this(train, test, testFraction, textColumn, labelColumn, tokenizer, maxLength, batchSize, epochs, learningRate,
        warmupFraction, weightDecay, clipGradNorm, seed, device, threads, out, resume, stopAfterEpoch,
        checkpointEvery, 0);
  }

  /** The configuration as it was before step checkpoints: checkpoints every {@value #DEFAULT_CHECKPOINT_EVERY} steps. */
  public RunConfig(
      List<Path> train, List<Path> test, double testFraction, String textColumn, String labelColumn,
      Path tokenizer, int maxLength, int batchSize, int epochs, double learningRate, double warmupFraction,
      double weightDecay, double clipGradNorm, long seed, Device device, int threads, Path out, boolean resume,
      int stopAfterEpoch) {
    this(train, test, testFraction, textColumn, labelColumn, tokenizer, maxLength, batchSize, epochs, learningRate,
        warmupFraction, weightDecay, clipGradNorm, seed, device, threads, out, resume, stopAfterEpoch,
        DEFAULT_CHECKPOINT_EVERY);
  }

  /** What the task reads: the data files, columns, tokenizer and batch size. */
  public DataConfig data() {
    return new DataConfig(
        train, test, testFraction, textColumn, labelColumn, tokenizer, maxLength, batchSize, seed, out, lengthBuckets);
  }

  /** A builder with the CLI's defaults: 3 epochs, batch 32, lr 2e-3, 128 tokens, seed 42, CPU. */
  public static Builder builder(List<Path> train, Path tokenizer, Path out) {
    return new Builder(train, tokenizer, out);
  }

  /** Sets what differs from the defaults; {@link #build()} checks it all. */
  public static final class Builder {
    private final List<Path> train;
    private final Path tokenizer;
    private final Path out;
    private List<Path> test = List.of();
    private double testFraction = 0.2;
    private String textColumn = "text";
    private String labelColumn = "label";
    private int maxLength = 128;
    private int batchSize = 32;
    private int epochs = 3;
    private double learningRate = 2e-3;
    private double warmupFraction = 0.1;
    private double weightDecay = 0.01;
    private double clipGradNorm = 1.0;
    private long seed = 42;
    private Device device = Device.cpu();
    private int threads;
    private boolean resume;
    private int stopAfterEpoch;
    private int checkpointEvery = DEFAULT_CHECKPOINT_EVERY;
    private int lengthBuckets;
    private boolean unpad = true;

    private Builder(List<Path> train, Path tokenizer, Path out) {
      this.train = train;
      this.tokenizer = tokenizer;
      this.out = out;
    }

    public Builder test(List<Path> files) { this.test = files; return this; }
    public Builder testFraction(double f) { this.testFraction = f; return this; }
    public Builder columns(String text, String label) { this.textColumn = text; this.labelColumn = label; return this; }
    public Builder maxLength(int tokens) { this.maxLength = tokens; return this; }
    public Builder batchSize(int n) { this.batchSize = n; return this; }
    public Builder epochs(int n) { this.epochs = n; return this; }
    public Builder learningRate(double lr) { this.learningRate = lr; return this; }
    public Builder warmupFraction(double f) { this.warmupFraction = f; return this; }
    public Builder weightDecay(double w) { this.weightDecay = w; return this; }
    public Builder clipGradNorm(double norm) { this.clipGradNorm = norm; return this; }
    public Builder seed(long s) { this.seed = s; return this; }
    public Builder device(Device d) { this.device = d; return this; }
    public Builder threads(int n) { this.threads = n; return this; }
    public Builder resume(boolean r) { this.resume = r; return this; }
    public Builder stopAfterEpoch(int e) { this.stopAfterEpoch = e; return this; }
    public Builder checkpointEvery(int steps) { this.checkpointEvery = steps; return this; }
    public Builder lengthBuckets(int poolBatches) { this.lengthBuckets = poolBatches; return this; }
    public Builder unpad(boolean on) { this.unpad = on; return this; }

    public RunConfig build() {
      return new RunConfig(train, test, testFraction, textColumn, labelColumn, tokenizer, maxLength, batchSize, epochs,
          learningRate, warmupFraction, weightDecay, clipGradNorm, seed, device, threads, out, resume, stopAfterEpoch,
          checkpointEvery, lengthBuckets, unpad);
    }
  }
}
