package dev.graft.trainer.run;

import com.google.common.collect.ImmutableList;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.ir.io.AtomicFiles;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The run's {@code metrics.jsonl} (a line per step and a line per epoch, in the order they
 * happened) and {@code metrics.svg}, held in memory and rewritten whole through a temporary file,
 * so that a process killed at any point leaves a complete file. The loop writes the log before
 * each checkpoint, so the log always reaches at least as far as the checkpoint; on resume {@link
 * #truncate} drops what came after it.
 */
public final class MetricsLog {
  private final Path dir;
  private final String title;
  private final List<EpochMetrics> epochs = new ArrayList<>();
  private final List<StepMetrics> steps = new ArrayList<>();

  public MetricsLog(Path dir, String title) {
    this.dir = dir;
    this.title = title;
  }

  public ImmutableList<EpochMetrics> epochs() {
    return ImmutableList.copyOf(epochs);
  }

  public ImmutableList<StepMetrics> steps() {
    return ImmutableList.copyOf(steps);
  }

  public void add(StepMetrics s) {
    steps.add(s);
  }

  public void add(EpochMetrics e) {
    epochs.add(e);
  }

  /** Reads {@code dir/metrics.jsonl} into this log (nothing when there is none). */
  public void read() {
    Path file = dir.resolve(TextClassificationRun.METRICS);
    if (!Files.exists(file)) return;
    try {
      for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
        if (line.isBlank()) continue;
        JsonObject o = JsonParser.parseString(line).getAsJsonObject();
        if (StepMetrics.isStepLine(o)) steps.add(StepMetrics.fromJson(o));
        else epochs.add(EpochMetrics.fromJson(o));
      }
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot read " + file, e);
    }
  }

  /** Drops the steps after {@code step} and the epochs after {@code epochsDone}. */
  public void truncate(long step, int epochsDone) {
    steps.removeIf(s -> s.step() > step);
    epochs.removeIf(e -> e.epoch() > epochsDone);
  }

  /** Writes metrics.jsonl and metrics.svg. */
  public void write() {
    StringBuilder jsonl = new StringBuilder();
    int e = 0;
    int s = 0;
    // Steps and epochs interleaved as they happened: an epoch's line follows its last step.
    while (e < epochs.size() || s < steps.size()) {
      boolean stepFirst =
          s < steps.size() && (e >= epochs.size() || steps.get(s).epoch() <= epochs.get(e).epoch());
      jsonl.append(stepFirst ? steps.get(s++).toJson() : epochs.get(e++).toJson()).append('\n');
    }
    AtomicFiles.writeString(dir.resolve(TextClassificationRun.METRICS), jsonl.toString());
    if (!epochs.isEmpty() || !steps.isEmpty()) {
      AtomicFiles.writeString(dir.resolve(TextClassificationRun.PLOT), MetricsPlot.svg(title, epochs, steps));
    }
  }
}
