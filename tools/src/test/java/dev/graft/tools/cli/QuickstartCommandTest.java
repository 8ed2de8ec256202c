package dev.graft.tools.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The README's main command, run as a test: the whole quickstart on the real model and data, and
 * the bar for it, LoRA test accuracy of at least 0.90 on the held-out split. The merged
 * export is the same function as the tuned model, so its accuracy, measured through a separate
 * ORT session on the exported file, must match the run's.
 */
class QuickstartCommandTest {
  private static double accuracy(String out, String row) {
    Matcher m = Pattern.compile(Pattern.quote(row) + "\\s+test accuracy ([0-9.]+)").matcher(out);
    assertThat(m.find()).as("'" + row + "' in:%n%s", out).isTrue();
    return Double.parseDouble(m.group(1));
  }

  @Test
  void fineTunesMiniLmWithLoraToAtLeastNinetyPercentAndExportsItMerged(@TempDir Path dir) throws Exception {
    CliRun run = CliRun.of("quickstart", "--out", dir.toString());
    assertThat(run.exit()).as(run.err()).isZero();
    System.out.println(run.out());

    double before = accuracy(run.out(), "before: frozen encoder + trained head");
    double after = accuracy(run.out(), "after:  LoRA r=8 + head");
    double merged = accuracy(run.out(), "merged export");
    assertThat(after).isGreaterThanOrEqualTo(0.90);
    assertThat(after).isGreaterThan(before);
    assertThat(merged).isBetween(after - 2.0 / 600, after + 2.0 / 600);
    assertThat(run.out()).contains("(74,498 trainable parameters)").contains("(770 trainable parameters)");
    assertThat(Files.size(dir.resolve("merged.onnx"))).isPositive();
    // A line per epoch (three) beside the per-step lines.
    assertThat(Files.readAllLines(dir.resolve("lora/metrics.jsonl")).stream().filter(l -> !l.contains("\"type\":\"step\"")))
        .hasSize(3);
    assertThat(Files.readAllLines(dir.resolve("lora/metrics.jsonl"))).anyMatch(l -> l.contains("\"type\":\"step\""));
  }
}
