package dev.graft.rewrite.discover;

/** What a discovered module is. */
public enum ModuleKind {
  /** MatMul with a constant 2-D weight (and an optional bias Add), or Gemm. */
  LINEAR,
  /** Conv with a constant weight. */
  CONV,
  /** Scaled dot-product attention: projections, scores, softmax, context, head split and merge. */
  ATTENTION,
  /** Up projection, activation, down projection. */
  FFN,
  /** LayerNormalization, its decomposed form, or BatchNormalization. */
  NORM,
  /** Gather on a constant table. */
  EMBEDDING,
  /** An Add of a block's output and the stream that entered it. */
  RESIDUAL
}
