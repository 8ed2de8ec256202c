package dev.graft.tools.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class ProgressBarTest {
  private long now;
  private final StringWriter text = new StringWriter();

  private ProgressBar bar(int total) {
    return new ProgressBar(new PrintWriter(text, true), true, "epoch 1/1", total, () -> now);
  }

  private String last() {
    List<String> drawn = List.of(text.toString().split("\r"));
    return drawn.get(drawn.size() - 1).strip();
  }

  @Test
  void timeLeftIsThePaceSinceTheFirstUpdateOverWhatIsLeft() {
    ProgressBar b = bar(10);
    now = TimeUnit.SECONDS.toNanos(100);
    b.update(1, "loss 0.5", 3.0, "ex");
    // One unit done before the bar existed, at an unknown pace: no estimate yet.
    assertThat(last()).isEqualTo("epoch 1/1 [##......................] 1/10  loss 0.5  3.0 ex/s  ETA --:--");
    now += TimeUnit.SECONDS.toNanos(6);
    b.update(4, "loss 0.4", 3.0, "ex");
    // 3 units in 6 s: 2 s each, 6 left.
    assertThat(last()).endsWith("4/10  loss 0.4  3.0 ex/s  ETA 0:12");
  }

  @Test
  void aBarThatStartsPartOfTheWayEstimatesFromItsOwnUnitsOnly() {
    // A resumed epoch: its first step is 61 of 75, the 60 before it ran in another process.
    ProgressBar b = bar(75);
    now = 0;
    b.update(61, "", 1.0, "ex");
    assertThat(last()).endsWith("ETA --:--");
    now += TimeUnit.SECONDS.toNanos(20);
    b.update(65, "", 1.0, "ex");
    // 4 steps in 20 s: 5 s each, 10 left.
    assertThat(last()).endsWith("65/75    1.0 ex/s  ETA 0:50");
  }

  @Test
  void workDoneInOneUpdateLeavesNoTime() {
    ProgressBar b = bar(1);
    b.update(1, "", 2.0, "batch");
    assertThat(last()).endsWith("1/1    2.0 batch/s  ETA 0:00");
  }
}
