package dev.graft.trainer.eval;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;

/**
 * A model's logits over a labelled dataset: {@code logits[i]} has one column per class, {@code
 * labels[i]} is example {@code i}'s true class id, and {@code classNames.get(c)} names class
 * {@code c}. Arrays are shared, not copied: treat them as read-only.
 */
public record Predictions(float[][] logits, int[] labels, ImmutableList<String> classNames) {
  public Predictions {
    checkArgument(
        logits.length == labels.length, "%s rows of logits for %s labels", logits.length, labels.length);
  }

  /** Accuracy, macro-F1 and the confusion matrix of these predictions. */
  public ClassificationMetrics metrics() {
    return ClassificationMetrics.of(labels, logits, classNames);
  }
}
