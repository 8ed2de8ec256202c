package dev.graft.export;

import dev.graft.ir.Model;
import dev.graft.rewrite.peft.CodaSparseForm;

/**
 * The export step of CoDA models: the written model takes the sparse inference form ({@link
 * CodaSparseForm}: each frozen layer runs on the k routed tokens), and it is verified against the
 * tuned model in its hard dense form (the same hard top-k, the layer on every token), because the
 * tuned graph's soft weights are a training device the export deliberately drops.
 */
final class CodaExport {
  private CodaExport() {}

  /**
   * When {@code export} has dense CoDA layers, makes them sparse and returns the hard dense copy
   * of {@code tuned} to verify against; otherwise returns {@code tuned} and changes nothing.
   */
  static Model sparsify(Model tuned, Model export) {
    if (!CodaSparseForm.applies(export)) return tuned;
    Model reference = tuned.copy();
    CodaSparseForm.toHard(reference);
    CodaSparseForm.apply(export);
    return reference;
  }
}
