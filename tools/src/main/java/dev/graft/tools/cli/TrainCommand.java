package dev.graft.tools.cli;

import dev.graft.rewrite.recipe.Recipe;
import dev.graft.trainer.run.EpochMetrics;
import dev.graft.trainer.run.Pipeline;
import dev.graft.trainer.run.RunConfig;
import dev.graft.trainer.run.RunListener;
import dev.graft.trainer.run.RunResult;
import dev.graft.trainer.run.TextClassificationRun;
import dev.graft.trainer.task.HeadKind;
import dev.graft.trainer.task.Task;
import dev.graft.trainer.task.TaskOptions;
import dev.graft.trainer.task.Tasks;
import dev.graft.trainer.train.Device;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code graft train}: graft a recipe's modules onto a model, add the task's head where the model
 * lacks one, and train them on text data (the {@link Pipeline} with a task from {@link Tasks}).
 */
@Command(
    name = "train",
    mixinStandardHelpOptions = true,
    versionProvider = GraftVersion.class,
    description = {
      "Fine-tune a model for a task: apply the recipe's passes (how the backbone adapts), add the"
          + " task's head where the model lacks the task's output (announced with its parameter"
          + " count), train only the parameters they add on ONNX Runtime, and evaluate after every"
          + " epoch.",
      "Tasks: classify (labels are categories; a pooling + linear head to as many classes as the"
          + " data has; softmax cross-entropy; accuracy, macro-F1), regress (numeric labels; a head with"
          + " one output; MSE or --huber; RMSE, MAE, Pearson, Spearman), embed (sentence embeddings, no"
          + " head: the multiple-negatives ranking loss over (text, --pair-column) pairs, or pairs formed"
          + " within a label; recall@1, recall@10, MRR, nearest-centroid accuracy; the export keeps the"
          + " base model's inputs and outputs). Without --task, the task is chosen from the labels and"
          + " the choice is printed.",
      "Writes RUN_DIR/tuned.onnx (the adapted model with its trained weights, task and label"
          + " names), RUN_DIR/metrics.jsonl (a line per step and per epoch), RUN_DIR/metrics.svg"
          + " (loss per step, smoothed; test loss and metric per epoch) and"
          + " RUN_DIR/checkpoint.safetensors (for --resume; every --checkpoint-every steps)."
    },
    footerHeading = "%nExamples:%n",
    footer = {
      "  graft train --recipe examples/recipes/quickstart.yaml \\",
      "      --train train.tsv --test test.tsv --out runs/lora",
      "      all-MiniLM-L6-v2 (embedded), LoRA r=8 on query/value + a mean-pooling",
      "      head; --train sentiment (the default): the UCI sentiment sentences",
      "  graft train model.onnx --recipe examples/recipes/lora.yaml \\",
      "      --train train.csv --test test.csv --out runs/a",
      "      the recipe adapts the backbone; the task (classify, chosen from the",
      "      labels) adds the head it needs",
      "  graft train --recipe examples/recipes/lora.yaml --task regress \\",
      "      --train train.tsv --out runs/regress",
      "      labels read as numbers: a one-output head, MSE; RMSE, MAE, Spearman",
      "  graft train --recipe examples/recipes/lora.yaml --task embed \\",
      "      --train train.tsv --out runs/embed",
      "      sentence embeddings, no head: pairs within a label, in-batch negatives",
      "      (--pair-column positive: pairs from a column instead)",
      "  graft train --recipe r.yaml --train train.tsv --out runs/lora --epochs 2 \\",
      "      --stop-after 1",
      "  graft train --recipe r.yaml --train train.tsv --out runs/lora --epochs 2 \\",
      "      --resume                                              continue it",
      "Also: --recipe examples/recipes/two-stage.yaml (LayerNorm-affine + head, then the top",
      "1/8 Taylor channels of each FFN down projection; metrics.jsonl names each epoch's",
      "stage), --text-column review --label-column stars for other column names."
    })
final class TrainCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Parameters(
      index = "0",
      arity = "0..1",
      paramLabel = "MODEL",
      description = "The .onnx model to fine-tune. Default: the embedded all-MiniLM-L6-v2.")
  Path model;

  @Option(names = "--recipe", paramLabel = "FILE",
      description = "YAML or JSON recipe: the passes to apply, or stages with training between"
          + " them (see examples/recipes/, e.g. two-stage.yaml). Without one, the backbone stays"
          + " frozen and only the task's head trains (the baseline).")
  Path recipe;

  @Option(names = "--train", paramLabel = "DATA", split = ",",
      description = "Training data: CSV/TSV with a header, JSONL, JSON, or 'sentiment'"
          + " (the embedded UCI sentiment sentences; also sentiment:amazon|imdb|yelp)."
          + " Default: ${DEFAULT-VALUE}.")
  List<String> train = List.of(DataSources.SENTIMENT);

  @Option(names = "--test", paramLabel = "DATA", split = ",",
      description = "Held-out data. Default: a stratified --test-fraction of --train.")
  List<String> test = List.of();

  @Option(names = "--test-fraction", paramLabel = "F",
      description = "Share of --train held out when --test is not given. Default: ${DEFAULT-VALUE}.")
  double testFraction = 0.2;

  @Option(names = "--out", required = true, paramLabel = "RUN_DIR", description = "The run folder.")
  Path out;

  @Option(names = "--epochs", paramLabel = "N",
      description = "Epochs per stage, where the recipe's stage gives none. Default: ${DEFAULT-VALUE}.")
  int epochs = 3;

  @Option(names = "--batch-size", paramLabel = "N", description = "Default: ${DEFAULT-VALUE}.")
  int batchSize = 32;

  @Option(names = "--lr", paramLabel = "RATE",
      description = "Peak learning rate (linear warm-up, then linear decay). Default: ${DEFAULT-VALUE}.")
  double lr = 2e-3;

  @Option(names = "--warmup", paramLabel = "F",
      description = "Share of the steps spent warming up. Default: ${DEFAULT-VALUE}.")
  double warmup = 0.1;

  @Option(names = "--weight-decay", paramLabel = "W", description = "AdamW's decoupled weight decay. Default: ${DEFAULT-VALUE}.")
  double weightDecay = 0.01;

  @Option(names = "--clip", paramLabel = "NORM",
      description = "Global gradient-norm clipping; 0 turns it off. Default: ${DEFAULT-VALUE}.")
  double clip = 1.0;

  @Option(names = "--max-length", paramLabel = "TOKENS",
      description = "Truncate sequences to this many tokens. Default: ${DEFAULT-VALUE}.")
  int maxLength = 128;

  @Option(names = "--text-column", paramLabel = "NAME", description = "Default: ${DEFAULT-VALUE}.")
  String textColumn = "text";

  @Option(names = "--label-column", paramLabel = "NAME", description = "Default: ${DEFAULT-VALUE}.")
  String labelColumn = "label";

  @Option(names = "--tokenizer", paramLabel = "FILE",
      description = "The model's tokenizer.json. Default: tokenizer.json beside MODEL, else the"
          + " embedded all-MiniLM-L6-v2's.")
  Path tokenizer;

  @Option(names = "--device", paramLabel = "DEVICE",
      description = "cpu, cuda or cuda:N (CUDA needs a build with -Pcuda). Default: ${DEFAULT-VALUE}.")
  String device = "cpu";

  @Option(names = "--threads", paramLabel = "N",
      description = "ONNX Runtime intra-op threads; 0 lets it choose. Default: ${DEFAULT-VALUE}.")
  int threads = 0;

  @Option(names = "--seed", description = "Seeds initialisation, shuffling and the split. Default: ${DEFAULT-VALUE}.")
  long seed = 42;

  @Option(names = "--task", paramLabel = "TASK",
      description = "classify, regress or embed. Default: chosen from the labels (regress when every"
          + " label is a number and they are not a few integers, else classify).")
  String task;

  @Option(names = "--huber", paramLabel = "DELTA",
      description = "regress: the Huber loss with this threshold instead of the mean squared error.")
  double huber = 0;

  @Option(names = "--scale", paramLabel = "S",
      description = "embed: the similarity scale of the ranking loss. Default: ${DEFAULT-VALUE}.")
  double scale = 20;

  @Option(names = "--pair-column", paramLabel = "NAME",
      description = "embed: the column holding each text's positive. Default: pairs formed within a label.")
  String pairColumn = "";

  @Option(names = "--head", paramLabel = "POOLING",
      description = "The head the task adds when the model lacks its output: mean, cls, max, or none"
          + " (the model or the recipe brings it). Default: ${DEFAULT-VALUE}.")
  String head = "mean";

  @Option(names = "--image", paramLabel = "KEY=VALUE,...",
      description = "Image data: size=HxW, crop=HxW, channels=1|3, mean=M[:M:M], std=S[:S:S], flip, pad=P"
          + " (random crops), limit=N, test-limit=N. Unset steps come from the model (its recorded"
          + " preprocessing, else its input shape).")
  String image = "";

  @Option(names = "--checkpoint-every", paramLabel = "STEPS",
      description = "Also checkpoint every this many steps, so that --resume after a crash repeats at"
          + " most that many; 0: only after each epoch. Default: ${DEFAULT-VALUE}.")
  int checkpointEvery = RunConfig.DEFAULT_CHECKPOINT_EVERY;

  @Option(names = "--bucket-by-length", paramLabel = "POOL", arity = "0..1", fallbackValue = "50",
      description = "Batch texts of similar length together: each epoch shuffles the examples, sorts"
          + " pools of POOL batches by length and shuffles the batches, so short texts are not padded"
          + " to long ones (faster epochs on uneven text; batches less mixed). POOL: 50 when the option"
          + " has no value. Default: off (shuffled batches).")
  int bucketByLength = 0;

  @Option(names = "--no-unpad", negatable = false,
      description = "Train on padded batches as they come. By default a model with an"
          + " attention_mask input trains padding-free: its linear layers, norms and activations run"
          + " on the real tokens only (gathered before them, scattered back where attention or"
          + " pooling mixes positions), which saves the padding's share of their time; where every"
          + " attention masks its keys, short rows also share attention rows side by side, each"
          + " masked to its own keys. The first padded batch checks that this leaves loss, logits and the"
          + " gradient norm unchanged (the model masks padding), and training falls back to padded"
          + " batches, saying why, when it does not.")
  boolean noUnpad;

  @Option(names = "--resume",
      description = "Continue the run in RUN_DIR from its last checkpoint, with the same options.")
  boolean resume;

  @Option(names = "--stop-after", paramLabel = "EPOCH",
      description = "Stop once this epoch is done, keeping the whole run's schedule; continue"
          + " later with --resume. Default: run all epochs.")
  int stopAfter = 0;

  @Override
  public Integer call() throws Exception {
    Path modelPath = model != null ? ModelPaths.requireReadableModel(model) : DefaultModel.path();
    Recipe r = recipe == null ? null : loadRecipe(recipe);
    Device onDevice = Device.parse(device).requireProvider();
    RunConfig config =
        new RunConfig(
            DataSources.resolve(train), DataSources.resolve(test), testFraction, textColumn,
            labelColumn, DataSources.tokenizer(tokenizer, modelPath), maxLength, batchSize, epochs,
            lr, warmup, weightDecay, clip, seed, onDevice, threads, out, resume, stopAfter,
            checkpointEvery, bucketByLength, !noUnpad);
    PrintWriter stdout = spec.commandLine().getOut();
    PrintWriter stderr = spec.commandLine().getErr();
    String taskName = task;
    boolean images = !config.data().train().isEmpty()
        && config.data().train().stream().allMatch(dev.graft.trainer.data.ImageSources::isImageData);
    if (images && (taskName == null || taskName.equals("classify"))) {
      taskName = dev.graft.trainer.task.ImageClassifyTask.NAME; // classify, on image data
    }
    if (taskName == null) {
      Tasks.Choice choice = Tasks.choose(config.data());
      taskName = choice.task();
      stdout.println("task: " + taskName + " (" + choice.reason() + ")");
    }
    Task t = Tasks.create(taskName, taskOptions());
    Pipeline pipeline = new Pipeline(config, new CliListener(stdout, stderr));
    RunResult result = r == null ? pipeline.runHeadOnly(modelPath, t) : pipeline.run(modelPath, r, t);
    EpochMetrics last = result.last();
    stdout.printf(Locale.ROOT, "test %s after %d epochs (%,d trainable parameters)%n",
        summary(last), last.epoch(), result.trainableParameters());
    stdout.println("wrote " + out.resolve(TextClassificationRun.TUNED) + ", "
        + out.resolve(TextClassificationRun.METRICS) + ", " + out.resolve(TextClassificationRun.PLOT));
    stdout.flush();
    return 0;
  }

  TaskOptions taskOptions() {
    return TaskOptions.defaults().withHead(HeadKind.parse(head)).withSeed(seed).withHuberDelta(huber)
        .withScale(scale).withPairColumn(pairColumn).withImage(dev.graft.trainer.task.ImageOptions.parse(image));
  }

  /** "accuracy 0.9167, macro_f1 0.9160" */
  static String summary(EpochMetrics m) {
    StringBuilder s = new StringBuilder();
    m.test().forEach((k, v) -> s.append(s.length() == 0 ? "" : ", ").append(String.format(Locale.ROOT, "%s %.4f", k, v)));
    return s.toString();
  }

  static Recipe loadRecipe(Path file) {
    try {
      return Recipe.load(file);
    } catch (IOException e) {
      throw new UserError("Cannot read recipe " + file + ": " + e.getMessage());
    }
  }

  /** Progress on stderr (a bar), epoch summaries and messages on stdout. */
  static final class CliListener implements RunListener {
    private final PrintWriter out;
    private final PrintWriter err;
    private final boolean interactive = ProgressBar.consoleIsInteractive();
    private ProgressBar bar;
    private int barEpoch = -1;

    CliListener(PrintWriter out, PrintWriter err) {
      this.out = out;
      this.err = err;
    }

    @Override
    public void message(String line) {
      out.println(line);
      out.flush();
    }

    @Override
    public void step(int epoch, int epochs, int batch, int batches, double loss, double examplesPerSecond) {
      if (bar == null || barEpoch != epoch) {
        bar = new ProgressBar(err, interactive, "epoch " + epoch + "/" + epochs, batches);
        barEpoch = epoch;
      }
      bar.update(batch, String.format(Locale.ROOT, "loss %.4f", loss), examplesPerSecond, "ex");
    }

    @Override
    public void epoch(EpochMetrics m) {
      out.printf(Locale.ROOT,
          "epoch %d: train loss %.4f, test loss %.4f, test %s (%.0f s, %.1f ex/s)%n",
          m.epoch(), m.trainLoss(), m.testLoss(), summary(m), m.seconds(), m.examplesPerSecond());
      out.flush();
    }
  }
}
