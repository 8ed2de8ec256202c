package dev.graft.tools.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.fixtures.Datasets;
import dev.graft.fixtures.PretrainedModels;
import dev.graft.trainer.data.TextDatasets;
import dev.graft.trainer.data.TextExample;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every example line of every command's {@code --help} runs as written, in a folder holding the
 * files the examples name: model.onnx (the real all-MiniLM-L6-v2), small train/test splits of the
 * Yelp sentiment sentences, the repository's examples/recipes. Commands run in the order a user
 * would (rewrite and train before export, export before eval), so each example finds what the one
 * before wrote. The quickstart's examples are the exception: {@code QuickstartCommandTest} runs
 * {@code graft quickstart} itself (minutes on the full data), so they are only checked to parse.
 * An example may continue over several lines, each but the last ending in a backslash; two or
 * more spaces start a comment; a pipe ends the command.
 */
class HelpExamplesTest {
  private static final List<String> ORDER =
      List.of("", "inspect", "methods", "convert", "rewrite", "train", "export", "eval", "check", "bench",
          "generate", "quickstart");

  /** An example line: two spaces, "graft", the command; a run of 2+ spaces starts a comment. */
  private static final Pattern EXAMPLE = Pattern.compile("^\\s*(?:Then, e\\.g\\.: )?(graft(?: .*)?)$");

  @Test
  void everyHelpExampleRuns(@TempDir Path work) throws Exception {
    // As a wide terminal shows them: picocli wraps help at 80 columns, which can split an example.
    String width = System.getProperty("picocli.usage.width");
    System.setProperty("picocli.usage.width", "200");
    try {
      runAll(work);
    } finally {
      if (width == null) System.clearProperty("picocli.usage.width");
      else System.setProperty("picocli.usage.width", width);
    }
  }

  private void runAll(Path work) throws Exception {
    // Every command is covered: a new command must add its examples to ORDER.
    java.util.Set<String> commands = new picocli.CommandLine(new Graft()).getSubcommands().keySet();
    assertThat(ORDER.subList(1, ORDER.size())).containsExactlyInAnyOrderElementsOf(commands);
    setUp(work);
    List<String> ran = new ArrayList<>();
    for (String command : ORDER) {
      for (String line : examples(command)) {
        String[] args = args(line, work);
        if (command.equals("quickstart") || (args.length > 0 && args[0].equals("quickstart"))) {
          assertThat(CliRun.of("quickstart", "--help").exit()).isZero();
          continue;
        }
        if (command.equals("export") && !Files.exists(work.resolve("run"))) {
          Files.createSymbolicLink(work.resolve("run"), work.resolve("runs/lora"));
        }
        long start = System.nanoTime();
        CliRun r = CliRun.of(args);
        System.out.printf("%5.1f s  %s%n", (System.nanoTime() - start) / 1e9, line);
        assertThat(r.exit()).as("%s%nstdout: %s%nstderr: %s", line, r.out(), r.err()).isZero();
        ran.add(line);
      }
    }
    // Each command's help has examples, and they all ran.
    assertThat(ran).anyMatch(l -> l.startsWith("graft train model.onnx --recipe examples/recipes/lora.yaml"));
    assertThat(ran).anyMatch(l -> l.startsWith("graft eval")).anyMatch(l -> l.startsWith("graft export"))
        .anyMatch(l -> l.startsWith("graft rewrite")).anyMatch(l -> l.startsWith("graft convert"));
    System.out.println(ran.size() + " help examples ran");
  }

  /** The example lines (comments cut off) of {@code command}'s help; "" is graft's own. */
  static List<String> examples(String command) {
    CliRun help = command.isEmpty() ? CliRun.of("--help") : CliRun.of(command, "--help");
    assertThat(help.exit()).isZero();
    int from = help.out().indexOf("Examples:");
    assertThat(from).as("graft %s --help has an Examples section", command).isNotNegative();
    List<String> out = new ArrayList<>();
    List<String> lines = help.out().substring(from).lines().toList();
    for (int i = 0; i < lines.size(); i++) {
      Matcher m = EXAMPLE.matcher(lines.get(i));
      if (!m.matches()) continue;
      String example = m.group(1);
      // A line ending in a backslash continues on the next.
      while (example.endsWith("\\") && i + 1 < lines.size()) example = example.substring(0, example.length() - 1) + lines.get(++i).strip();
      example = example.split("\\s{2,}")[0].strip();
      int pipe = example.indexOf(" | ");
      out.add(pipe < 0 ? example : example.substring(0, pipe));
    }
    assertThat(out).as("examples of graft %s", command).isNotEmpty();
    return out;
  }

  /** The line's arguments after "graft", quotes removed, relative paths resolved in {@code work}. */
  static String[] args(String line, Path work) {
    List<String> args = new ArrayList<>();
    Matcher m = Pattern.compile("'([^']*)'|\"([^\"]*)\"|(\\S+)").matcher(line);
    while (m.find()) args.add(m.group(1) != null ? m.group(1) : m.group(2) != null ? m.group(2) : m.group(3));
    args.remove(0);
    for (int i = 0; i < args.size(); i++) {
      String a = args.get(i);
      boolean path = !a.startsWith("-") && !a.contains("*") && !a.contains(":")
          && (a.contains("/") || a.matches(".*\\.(onnx|csv|tsv|jsonl|json|yaml|data)"));
      if (path && !a.startsWith("/")) args.set(i, work.resolve(a).toString());
    }
    return args.toArray(String[]::new);
  }

  private static void setUp(Path work) throws Exception {
    Path model = PretrainedModels.miniLm();
    // bench compares any models with the same inputs: the base stands in for the adapter, CoDA and
    // merged exports its examples name.
    for (String name : List.of("model.onnx", "in.onnx", "all-minilm-l6-v2.onnx", "adapter.onnx", "coda.onnx",
        "merged-lora.onnx")) {
      Files.createSymbolicLink(work.resolve(name), model);
    }
    // generate's examples continue a prompt with runs/lm/tuned.onnx: a small LLaMA-style decoder
    // with a KV cache (untrained: the examples show the command works, not what it says).
    Files.createDirectories(work.resolve("runs/lm"));
    // Position tables of 512, so the 200-token example fits.
    dev.graft.fixtures.TinyDecoders.Config small = dev.graft.fixtures.TinyDecoders.Config.small();
    dev.graft.fixtures.TinyDecoders.Config config = new dev.graft.fixtures.TinyDecoders.Config(
        small.layers(), small.hidden(), small.heads(), small.kvHeads(), small.ffn(), small.vocab(), 512, true, small.seed());
    dev.graft.ir.io.ModelIO.save(dev.graft.fixtures.TinyDecoders.standard(config), work.resolve("runs/lm/tuned.onnx"));
    Files.createSymbolicLink(work.resolve("examples"), Path.of("..", "examples").toAbsolutePath().normalize());
    Path recipes = work.resolve("examples/recipes");
    Files.copy(recipes.resolve("quickstart.yaml"), work.resolve("r.yaml"));
    List<TextExample> yelp = TextDatasets.read(Datasets.sentiment("yelp"));
    List<TextExample> train = new ArrayList<>();
    List<TextExample> test = new ArrayList<>();
    // Both labels in both parts: the file alternates blocks, so take from the front and the back.
    for (int i = 0; i < 12; i++) {
      train.add(yelp.get(i));
      train.add(yelp.get(yelp.size() - 1 - i));
    }
    for (int i = 12; i < 16; i++) {
      test.add(yelp.get(i));
      test.add(yelp.get(yelp.size() - 1 - i));
    }
    write(work.resolve("train.tsv"), "text\tlabel", train, e -> e.text() + "\t" + e.label());
    write(work.resolve("test.tsv"), "text\tlabel", test, e -> e.text() + "\t" + e.label());
    write(work.resolve("train.csv"), "text,label", train, e -> csv(e.text()) + "," + e.label());
    write(work.resolve("test.csv"), "text,label", test, e -> csv(e.text()) + "," + e.label());
    write(work.resolve("reviews.tsv"), "review\tstars", train, e -> e.text() + "\t" + (e.label().equals("1") ? "5" : "1"));
    List<TextExample> amazon = TextDatasets.read(Datasets.sentiment("amazon")).subList(0, 8);
    write(work.resolve("ood.csv"), "text,label", amazon, e -> csv(e.text()) + "," + e.label());
    // Pairs: a sentence and another of the same label (stand-ins for question/answer pairs).
    List<TextExample> pairs = new ArrayList<>();
    for (int i = 0; i + 1 < train.size(); i += 2) pairs.add(new TextExample(train.get(i).text(), train.get(i + 1).text()));
    write(work.resolve("pairs.tsv"), "text\tpositive", pairs, e -> e.text() + "\t" + e.label());
  }

  private static String csv(String s) {
    return "\"" + s.replace("\"", "\"\"") + "\"";
  }

  private static void write(
      Path file, String header, List<TextExample> rows, java.util.function.Function<TextExample, String> line)
      throws Exception {
    StringBuilder s = new StringBuilder(header).append('\n');
    for (TextExample e : rows) s.append(line.apply(e).replace("\r", " ")).append('\n');
    Files.writeString(file, s, StandardCharsets.UTF_8);
  }
}
