package dev.graft.rewrite.method;

/**
 * How a method's trained update goes into the frozen weights of a merged export, or why it cannot.
 * The exporter ({@code DeltaFolding}) asks the method for this and applies one generic rule per
 * kind; it never re-parses a method's subgraph by hand. The contract each kind states is what the
 * method's pass must emit, and the method's tests check the two together (identity at
 * initialisation, merged export equal to the tuned model).
 *
 * <pre>
 *   IN_PLACE        the trained tensors are the model's own weights          nothing to fold; the
 *                                                                            trainable records go
 *   CONSTANTS       the tagged nodes compute a new weight from constants      each cluster is run once
 *                   only (W·(1+dγ), b+db, m·V/‖V‖, W + A·B ...)              on ONNX Runtime and its
 *                                                                            value replaces the weight
 *   LINEAR_BRANCH   y = Add(Linear(x, W), branch(x)), branch linear in x      ΔW = branch(I): run the
 *                   with no constant term (LoRA, Taylor channels)             branch on the identity,
 *                                                                            then W + ΔW (ᵀ for Gemm)
 *   CONV_BRANCH     y = Add(Conv(x, W), Mul(Conv(Conv(x, A), B 1×1), s))    W + s·B·A, computed
 *                   (Conv-LoRA)                                              on ONNX Runtime
 *   KEPT            the update reads the data (adapters, prompts, a head)     its nodes stay, with
 *                                                                            constant weights
 * </pre>
 */
public sealed interface Fold {
  /** Every node a method of this fold inserts must be gone after folding. */
  boolean mergeable();

  /** The trained tensors are the model's own weights (full fine-tuning). */
  record InPlace() implements Fold {
    @Override
    public boolean mergeable() {
      return true;
    }
  }

  /** The tagged nodes compute weights from constants only; the exporter evaluates them once. */
  record Constants() implements Fold {
    @Override
    public boolean mergeable() {
      return true;
    }
  }

  /**
   * A branch beside a MatMul or Gemm, merged by an Add tagged {@code merge} whose input 0 is the
   * linear's output and input 1 the branch's. The branch reads the linear's input x, is linear in
   * x and has no constant term, so its weight delta is the branch evaluated on the identity matrix.
   */
  record LinearBranch() implements Fold {
    @Override
    public boolean mergeable() {
      return true;
    }
  }

  /**
   * A low-rank pair of convolutions beside a Conv, merged by an Add tagged {@code merge}: {@code
   * Mul(Conv(Conv(x, A[r, i, kh, kw]), B[o, r, 1, 1]), s)}, which folds into the Conv's weight as
   * {@code W + s · B·A} (Conv-LoRA; {@code ConvLoraFold} in the exporter).
   */
  record ConvBranch() implements Fold {
    @Override
    public boolean mergeable() {
      return true;
    }
  }

  /**
   * The update cannot fold (it reads the data, not only the weights); the export keeps its nodes.
   *
   * @param why one line for the export report
   */
  record Kept(String why) implements Fold {
    @Override
    public boolean mergeable() {
      return false;
    }
  }

  static Fold inPlace() {
    return new InPlace();
  }

  static Fold constants() {
    return new Constants();
  }

  static Fold linearBranch() {
    return new LinearBranch();
  }

  static Fold convBranch() {
    return new ConvBranch();
  }

  static Fold kept(String why) {
    return new Kept(why);
  }
}
