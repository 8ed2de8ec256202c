package dev.graft.trainer.run;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.graft.trainer.train.LrSchedule;
import org.junit.jupiter.api.Test;

/**
 * Stages share one schedule: concatenating the stages' learning rates step by step must give the
 * single linear warm-up-then-decay schedule of the whole run (the closed form is the oracle).
 */
class StageScheduleTest {
  @Test
  void stagesTogetherFollowOneRunWideSchedule() throws Exception {
    int batches = 10;
    int[] stageEpochs = {2, 1};
    double peak = 5e-3;
    long all = batches * 3L;
    long warmup = Math.round(0.1 * all);
    long global = 0;
    int before = 0;
    for (int epochs : stageEpochs) {
      LrSchedule s = TextClassificationRun.stageSchedule(peak, 0.1, batches, 3, before, epochs);
      for (long u = 1; u <= (long) batches * epochs; u++) {
        global++;
        double expected = global <= warmup ? peak * global / warmup : peak * (all - global) / (all - warmup);
        assertThat(s.lr(u)).as("global step %s", global).isCloseTo(expected, within(1e-12));
      }
      before += epochs;
    }
    assertThat(global).isEqualTo(all);
  }
}
