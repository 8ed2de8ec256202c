package dev.graft.rewrite;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMultiset;

/**
 * What one pass did (or, for a dry run, would do).
 *
 * @param pass the pass name
 * @param changes one entry per change, e.g. {@code "lora layer.0.attention.query"}; a multiset so
 *     that repeated edits of one kind count
 * @param parametersAdded the trainable parameters the pass added
 * @param dryRun whether this is a plan rather than a record of edits
 * @param notes why targets were left alone ({@code "layer.0.attention.query: already has lora"})
 */
public record PassResult(
    String pass,
    ImmutableMultiset<String> changes,
    long parametersAdded,
    boolean dryRun,
    ImmutableList<String> notes) {

  public PassResult(String pass, ImmutableMultiset<String> changes, long parametersAdded) {
    this(pass, changes, parametersAdded, false, ImmutableList.of());
  }

  /** A result without notes (every target was applied or planned). */
  public PassResult(String pass, ImmutableMultiset<String> changes, long parametersAdded, boolean dryRun) {
    this(pass, changes, parametersAdded, dryRun, ImmutableList.of());
  }

  /** No change, for the reason in {@code note}: {@code "prompt: already has prompt"}. */
  public static PassResult unchanged(String pass, boolean dryRun, String note) {
    return new PassResult(pass, ImmutableMultiset.of(), 0, dryRun, ImmutableList.of(note));
  }

  public boolean changed() {
    return !changes.isEmpty();
  }

  /** One line for logs and the CLI. */
  public String summary() {
    if (!changed()) {
      return pass + ": no change" + (notes.isEmpty() ? "" : " (" + notes.size() + " targets already done)");
    }
    return pass
        + (dryRun ? " (dry run): would make " : ": ")
        + changes.size()
        + " change"
        + (changes.size() == 1 ? "" : "s")
        + ", "
        + String.format("%,d", parametersAdded)
        + " trainable parameters"
        + (dryRun ? "" : " added");
  }
}
