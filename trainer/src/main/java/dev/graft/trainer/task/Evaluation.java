package dev.graft.trainer.task;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableMap;
import java.util.Locale;
import java.util.Map;

/**
 * A task's scores on the held-out data after an epoch: the mean loss and named metrics in the
 * order the task reports them ({@code accuracy}, {@code macro_f1}; {@code rmse}, ...). The first
 * metric is the headline one the run prints and plots.
 */
public record Evaluation(double loss, ImmutableMap<String, Double> metrics) {
  public Evaluation {
    checkArgument(!metrics.isEmpty(), "an evaluation has at least one metric");
  }

  public static Evaluation of(double loss, Map<String, Double> metrics) {
    return new Evaluation(loss, ImmutableMap.copyOf(metrics));
  }

  /** The first metric's name. */
  public String headline() {
    return metrics.keySet().iterator().next();
  }

  /** {@code metric}'s value, or NaN when the task does not report it. */
  public double get(String metric) {
    return metrics.getOrDefault(metric, Double.NaN);
  }

  /** "accuracy 0.9167, macro_f1 0.9160". */
  public String summary() {
    StringBuilder s = new StringBuilder();
    for (Map.Entry<String, Double> e : metrics.entrySet()) {
      if (s.length() > 0) s.append(", ");
      s.append(String.format(Locale.ROOT, "%s %.4f", e.getKey(), e.getValue()));
    }
    return s.toString();
  }
}
