package dev.graft.trainer.run;

/** What a training run reports while it works; the CLI draws a progress bar from it. */
public interface RunListener {
  RunListener SILENT = new RunListener() {};

  /** A line worth showing: what was loaded, what a pass added, where files went. */
  default void message(String line) {}

  /** A training step finished. */
  default void step(int epoch, int epochs, int batch, int batches, double loss, double examplesPerSecond) {}

  /** An epoch finished and was evaluated. */
  default void epoch(EpochMetrics metrics) {}
}
