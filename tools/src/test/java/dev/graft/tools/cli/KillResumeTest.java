package dev.graft.tools.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A real crash: {@code graft train} runs in a child JVM, is killed with SIGKILL
 * ({@link Process#destroyForcibly()}) mid-epoch once metrics.jsonl shows a few steps, and
 * {@code --resume} continues it. The resumed run repeats at most {@code --checkpoint-every} steps,
 * and, on one ORT thread, ends exactly where an uninterrupted run with the same options ends: the
 * same step losses after the resume point and the same held-out metrics. The child's stderr also
 * shows that a train run prints no SLF4J warnings.
 */
class KillResumeTest {
  private static final int EVERY = 3;

  private static List<String> train(Path out, String... extra) {
    List<String> args = new ArrayList<>(List.of(
        "train", "--recipe", Path.of("..", "examples", "recipes", "head-only.yaml").toString(),
        "--train", "sentiment:yelp", "--test-fraction", "0.2", "--max-length", "16", "--batch-size", "8",
        "--epochs", "1", "--lr", "1e-2", "--threads", "1", "--checkpoint-every", Integer.toString(EVERY),
        "--out", out.toString()));
    args.addAll(List.of(extra));
    return args;
  }

  private static List<JsonObject> lines(Path run) throws Exception {
    Path file = run.resolve("metrics.jsonl");
    if (!Files.exists(file)) return List.of();
    List<JsonObject> out = new ArrayList<>();
    for (String l : Files.readAllLines(file)) if (!l.isBlank()) out.add(JsonParser.parseString(l).getAsJsonObject());
    return out;
  }

  private static long lastStep(Path run) throws Exception {
    return lines(run).stream().filter(o -> o.has("type")).mapToLong(o -> o.get("step").getAsLong()).max().orElse(0);
  }

  @Test
  void aRunKilledMidEpochResumesFromItsLastStepCheckpoint(@TempDir Path dir) throws Exception {
    Path killed = dir.resolve("killed");
    List<String> command = new ArrayList<>(List.of(
        Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-Xmx1g",
        "-cp", System.getProperty("java.class.path"), Graft.class.getName()));
    command.addAll(train(killed));
    Process child = new ProcessBuilder(command).redirectOutput(dir.resolve("child.log").toFile())
        .redirectError(dir.resolve("child.err").toFile()).start();
    long seen = 0;
    try {
      long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(4);
      while (seen < 2 * EVERY + 1 && child.isAlive() && System.nanoTime() < deadline) {
        Thread.sleep(20);
        seen = lastStep(killed);
      }
      assertThat(child.isAlive()).as("the child is still training at step %s: %s", seen,
          Files.exists(dir.resolve("child.log")) ? Files.readString(dir.resolve("child.log")) : "").isTrue();
    } finally {
      child.destroyForcibly();
      child.waitFor(1, TimeUnit.MINUTES);
    }
    assertThat(lines(killed).stream().filter(o -> !o.has("type"))).as("killed before the epoch ended").isEmpty();
    // Stderr carries Graft's own messages only (the progress bar): no SLF4J "no providers"
    // warnings from the tokenizer library, which loaded before the first step.
    assertThat(Files.readString(dir.resolve("child.err"))).doesNotContain("SLF4J");

    CliRun resumed = CliRun.of(train(killed, "--resume").toArray(String[]::new));
    assertThat(resumed.exit()).as(resumed.err()).isZero();
    long checkpointStep = Long.parseLong(resumed.out().replaceAll("(?s).*resumed at step (\\d+).*", "$1"));
    assertThat(checkpointStep).as("lost at most %s steps of the %s seen", EVERY, seen)
        .isBetween(seen - EVERY, seen).isPositive();

    Path whole = dir.resolve("whole");
    CliRun uninterrupted = CliRun.of(train(whole).toArray(String[]::new));
    assertThat(uninterrupted.exit()).as(uninterrupted.err()).isZero();
    List<JsonObject> a = lines(whole);
    List<JsonObject> b = lines(killed);
    assertThat(b).hasSameSizeAs(a);
    for (int i = 0; i < a.size(); i++) {
      for (String key : List.of("step", "loss", "train_loss", "test_loss", "test_accuracy")) {
        if (a.get(i).has(key)) {
          assertThat(b.get(i).get(key).getAsDouble()).as("line %s %s", i, key).isEqualTo(a.get(i).get(key).getAsDouble());
        }
      }
    }
  }
}
