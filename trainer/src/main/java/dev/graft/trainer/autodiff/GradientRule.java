package dev.graft.trainer.autodiff;

import dev.graft.ir.Node;
import dev.graft.ir.Value;
import java.util.List;
import java.util.Optional;

/**
 * The reverse-mode rule of one operator: given the gradients of a forward node's outputs, emit
 * (through {@link GradBuilder}) the gradients of its inputs.
 *
 * <p>{@code outputGrads} has one entry per forward output; an entry is null when nothing on the
 * way to the loss reads that output (a Split piece that is never used, LayerNormalization's mean).
 * The result has one entry per forward input: empty where the rule gives no gradient. A rule
 * computes gradients only for inputs where {@link GradBuilder#needs(int)} is true; the driver
 * fails, naming the node and input, when a needed one comes back empty.
 */
@FunctionalInterface
public interface GradientRule {
  List<Optional<Value>> backward(GradBuilder b, Node forward, List<Value> outputGrads);
}
