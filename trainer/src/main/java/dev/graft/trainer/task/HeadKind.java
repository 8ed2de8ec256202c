package dev.graft.trainer.task;

import dev.graft.rewrite.peft.ClassificationHeadPass.Pooling;
import java.util.Locale;
import java.util.Optional;

/**
 * {@code --head}: how the head a task adds pools the hidden states, or {@link #NONE} to add no
 * head (a model that already has the task's output, or a recipe that adds the head itself).
 */
public enum HeadKind {
  /** Mean of the hidden states over the real (unmasked) tokens: sentence-transformers' pooling. */
  MEAN,
  /** The first token's hidden state ([CLS]): BERT's pooling. */
  CLS,
  /** Element-wise maximum over the real tokens. */
  MAX,
  /** No head: the model must already have the output the task reads. */
  NONE;

  /** The head pass's pooling; empty for {@link #NONE}. */
  public Optional<Pooling> pooling() {
    return switch (this) {
      case MEAN -> Optional.of(Pooling.MEAN);
      case CLS -> Optional.of(Pooling.FIRST);
      case MAX -> Optional.of(Pooling.MAX);
      case NONE -> Optional.empty();
    };
  }

  /** "mean", "cls", "max" or "none", as the CLI spells it. */
  public String cliName() {
    return name().toLowerCase(Locale.ROOT);
  }

  public static HeadKind parse(String s) {
    for (HeadKind k : values()) {
      if (k.cliName().equals(s.toLowerCase(Locale.ROOT))) return k;
    }
    throw new IllegalArgumentException("Unknown head '" + s + "': use mean, cls, max or none.");
  }
}
