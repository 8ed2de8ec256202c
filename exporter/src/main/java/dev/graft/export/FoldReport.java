package dev.graft.export;

import com.google.common.collect.ImmutableList;

/**
 * What {@link DeltaFolding} did to a model.
 *
 * @param folded one line per module whose delta went into frozen weights, e.g. {@code "lora
 *     layer.0.attention.query"}, in the order folded
 * @param kept one line per module that stays as nodes because its update cannot be folded into a
 *     weight (adapters, prompts, the head), e.g. {@code "head head (9 nodes)"}
 * @param dropoutsRemoved Graft-inserted Dropout nodes taken out (training-only)
 * @param nodesRemoved every node removed, dropouts included
 * @param initializersRemoved initializers that fell out of use (trainable deltas, scales)
 */
public record FoldReport(
    ImmutableList<String> folded,
    ImmutableList<String> kept,
    int dropoutsRemoved,
    int nodesRemoved,
    int initializersRemoved) {

  /** One line for logs and the CLI. */
  public String summary() {
    return "folded "
        + folded.size()
        + " module"
        + (folded.size() == 1 ? "" : "s")
        + ", kept "
        + kept.size()
        + " as nodes, removed "
        + nodesRemoved
        + " nodes ("
        + dropoutsRemoved
        + " dropout) and "
        + initializersRemoved
        + " initializers";
  }
}
