package dev.graft.trainer.train;

import dev.graft.ir.tensor.Tensor;

/**
 * What one train step reports.
 *
 * @param step the 1-based number of the update just made
 * @param loss the mean loss of the batch (over micro-batches: their mean), before the update
 * @param gradNorm the global L2 norm of the gradients before clipping
 * @param learningRate the rate this update used
 * @param logits the logits of the batch before the update (of the last micro-batch)
 */
public record StepResult(long step, double loss, double gradNorm, double learningRate, Tensor logits) {}
