package dev.graft.trainer.train;

import dev.graft.ir.tensor.Tensor;

/** The loss and logits of a batch under the current parameters. */
public record EvalResult(double loss, Tensor logits) {}
