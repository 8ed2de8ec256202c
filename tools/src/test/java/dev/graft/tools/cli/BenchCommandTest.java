package dev.graft.tools.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.fixtures.PretrainedModels;
import java.util.List;
import org.junit.jupiter.api.Test;

class BenchCommandTest {
  @Test
  void benchesModelsSideBySideAndReportsMediansAndSpeedUp() {
    String m = PretrainedModels.miniLm().toString();
    CliRun run = CliRun.of("bench", m, m, "--batch", "1", "--seq", "8", "--runs", "3", "--warmup", "1", "--threads", "1");
    assertThat(run.err()).isEmpty();
    assertThat(run.exit()).isZero();
    List<String> lines = run.out().lines().toList();
    assertThat(lines.get(0)).isEqualTo("batch 1, seq 8, threads 1, 1 warm-up + 3 timed runs each");
    assertThat(lines).hasSize(4);
    assertThat(lines.get(2)).endsWith("1.00x");
    for (String row : lines.subList(2, 4)) {
      String[] f = row.trim().split("\\s+");
      double median = Double.parseDouble(f[1]);
      double throughput = Double.parseDouble(f[4]);
      assertThat(median).isPositive();
      // One sequence per run: throughput is 1000 / median. Both are printed rounded (median to
      // 0.005 ms, throughput to 0.05 seq/s), so the printed pair can differ by up to
      // 1000 * 0.005 / median^2 (the median's rounding, propagated) plus 0.05.
      double medianLow = median - 0.005;
      double allowed = 0.05 + 1000 * 0.005 / (medianLow * medianLow) + 1e-9;
      assertThat(throughput).isCloseTo(1000 / median, org.assertj.core.data.Offset.offset(allowed));
    }
  }

  @Test
  void badSizesAreOneLineAndExitOne() {
    CliRun run = CliRun.of("bench", PretrainedModels.miniLm().toString(), "--runs", "0");
    assertThat(run.exit()).isEqualTo(1);
    assertThat(run.err().strip()).isEqualTo("graft bench: --runs must be at least 1, got 0");
  }
}
