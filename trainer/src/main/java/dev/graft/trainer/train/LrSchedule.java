package dev.graft.trainer.train;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableMap;
import java.util.Map;

/**
 * The learning rate of each step, fed to the train-step graph as an input. Steps count from 1:
 * {@code lr(1)} is the rate of the first update. During warm-up the rate climbs linearly, {@code
 * peak * t / warmup}, so that the first step is not 0 (PyTorch's LambdaLR starts its warm-up at 0);
 * afterwards it decays from {@code peak} to {@code floor} at step {@code total}, and stays there.
 */
public sealed interface LrSchedule {
  /** The learning rate of step {@code step} (1-based). */
  double lr(long step);

  /** What the schedule is, for checkpoints: type and parameters as strings. */
  Map<String, String> describe();

  static LrSchedule constant(double lr) {
    return new Constant(lr);
  }

  /** Linear warm-up over {@code warmup} steps, then linear decay to {@code floor} at {@code total}. */
  static LrSchedule linear(double peak, long warmup, long total, double floor) {
    return new Decaying(Shape.LINEAR, peak, warmup, total, floor);
  }

  /** Linear warm-up over {@code warmup} steps, then cosine decay to {@code floor} at {@code total}. */
  static LrSchedule cosine(double peak, long warmup, long total, double floor) {
    return new Decaying(Shape.COSINE, peak, warmup, total, floor);
  }

  record Constant(double lr) implements LrSchedule {
    public Constant {
      checkArgument(lr >= 0, "the learning rate must not be negative, got %s", lr);
    }

    @Override
    public double lr(long step) {
      return lr;
    }

    @Override
    public Map<String, String> describe() {
      return ImmutableMap.of("type", "constant", "lr", Double.toString(lr));
    }
  }

  enum Shape {
    LINEAR,
    COSINE
  }

  record Decaying(Shape shape, double peak, long warmup, long total, double floor)
      implements LrSchedule {
    public Decaying {
      checkArgument(shape != null, "a decaying schedule needs a shape");
      checkArgument(peak >= 0 && floor >= 0, "learning rates must not be negative: %s, %s", peak, floor);
      checkArgument(warmup >= 0, "warm-up steps must not be negative, got %s", warmup);
      checkArgument(
          total > warmup,
          "the schedule's total steps (%s) must exceed its warm-up steps (%s)",
          total,
          warmup);
    }

    @Override
    public double lr(long step) {
      checkArgument(step >= 1, "steps count from 1, got %s", step);
      if (step <= warmup) return peak * step / warmup;
      double progress = Math.min(1.0, (double) (step - warmup) / (total - warmup));
      double fraction =
          shape == Shape.LINEAR ? 1 - progress : 0.5 * (1 + Math.cos(Math.PI * progress));
      return floor + (peak - floor) * fraction;
    }

    @Override
    public Map<String, String> describe() {
      return ImmutableMap.of(
          "type", shape.name().toLowerCase(java.util.Locale.ROOT),
          "peak", Double.toString(peak),
          "warmup", Long.toString(warmup),
          "total", Long.toString(total),
          "floor", Double.toString(floor));
    }
  }
}
