package dev.graft.trainer.task;

import dev.graft.rewrite.GraphPass;

/**
 * A head a task adds on top of the recipe: the pass that adds it, and why the task adds it (the
 * model lacks the output the task reads), which the run prints with the head's parameter count.
 */
public record TaskHead(GraphPass pass, String reason) {}
