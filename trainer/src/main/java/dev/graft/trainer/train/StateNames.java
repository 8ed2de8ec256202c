package dev.graft.trainer.train;

/**
 * The names of what crosses the session boundary of the graphs {@link TrainStepGraph} makes. A
 * trainable parameter keeps its initializer's name as a graph input; everything Graft adds is
 * named under the reserved prefix {@value #PREFIX}, and the new value of any state input {@code x}
 * comes out as {@code updated(x)}.
 */
public final class StateNames {
  public static final String PREFIX = "graft.";
  /** Rank-0 float: the mean loss of the batch. */
  public static final String LOSS = "graft.loss";
  /** Rank-0 float: the global L2 norm of the gradients, before clipping. */
  public static final String GRAD_NORM = "graft.grad_norm";
  /** Rank-0 int64: the 1-based number of the step being taken (bias correction). */
  public static final String STEP = "graft.step";
  /** Rank-0 float: the learning rate of this step. */
  public static final String LEARNING_RATE = "graft.lr";
  /** Rank-0 float: what the apply graph multiplies the accumulated gradients by (1/k). */
  public static final String GRAD_SCALE = "graft.grad_scale";

  private StateNames() {}

  /** AdamW's first moment of parameter {@code param}. */
  public static String m(String param) {
    return "graft.adamw.m." + param;
  }

  /** AdamW's second moment of parameter {@code param}. */
  public static String v(String param) {
    return "graft.adamw.v." + param;
  }

  /** The running sum of {@code param}'s gradients over micro-batches. */
  public static String gradSum(String param) {
    return "graft.grad_sum." + param;
  }

  /** The output that holds the new value of state input {@code input}. */
  public static String updated(String input) {
    return "graft.updated." + input;
  }
}
