package dev.graft.ir.infer;

import dev.graft.ir.DataType;
import dev.graft.ir.Dim;
import dev.graft.ir.Shape;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/** Normalizations whose extra outputs have their own shapes. */
final class NormalizationRules {
  private NormalizationRules() {}

  /**
   * {@code LayerNormalization}: y like x; the optional Mean and InvStdDev keep x's dims before
   * {@code axis} and 1 from there on, in {@code stash_type} (float by default).
   */
  static void layerNorm(InferenceContext c) {
    Optional<Shape> x = c.shape(0);
    c.setOutput(0, c.elemOrNull(0), x.orElse(null));
    DataType stash = DataType.fromCode((int) c.attrLong("stash_type", DataType.FLOAT.code()));
    if (x.isEmpty()) {
      c.setOutput(1, stash, null);
      c.setOutput(2, stash, null);
      return;
    }
    int rank = x.get().rank();
    int axis = c.axis(c.attrLong("axis", -1), rank);
    List<Dim> stats = new ArrayList<>(x.get().dims().subList(0, axis));
    for (int i = axis; i < rank; i++) stats.add(Dims.ONE);
    c.setOutput(1, stash, Shape.of(stats));
    c.setOutput(2, stash, Shape.of(stats));
  }
}
