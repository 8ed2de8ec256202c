package dev.graft.trainer.run;

import com.google.common.collect.ImmutableList;
import java.nio.file.Path;

/**
 * What a finished run produced: the saved model, a line per epoch, the trainable parameters of the
 * last stage and the task that was trained.
 */
public record RunResult(Path tunedModel, ImmutableList<EpochMetrics> epochs, long trainableParameters, String task) {
  public EpochMetrics last() {
    return epochs.get(epochs.size() - 1);
  }
}
