package dev.graft.ir.infer;

import dev.graft.ir.Dim;
import dev.graft.ir.Shape;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/** Losses over class scores [N, C, d...] and labels [N, d...]. */
final class LossRules {
  private LossRules() {}

  /**
   * {@code SoftmaxCrossEntropyLoss}, {@code NegativeLogLikelihoodLoss}: a scalar under mean or sum
   * reduction, [N, d...] under none; SoftmaxCrossEntropyLoss's log_prob output is like the scores.
   */
  static void classLoss(InferenceContext c) {
    Optional<Shape> scores = c.shape(0);
    String reduction = c.attrString("reduction", "mean");
    Shape loss;
    if (!reduction.equals("none")) {
      loss = Shape.scalar();
    } else if (scores.isPresent()) {
      if (scores.get().rank() < 2) throw c.error("scores %s need a class dim", scores.get());
      List<Dim> d = new ArrayList<>(scores.get().dims());
      d.remove(1);
      loss = Shape.of(d);
    } else {
      loss = c.shape(1).orElse(null);
    }
    c.setOutput(0, c.elemOrNull(0), loss);
    c.setOutput(1, c.elemOrNull(0), scores.orElse(null));
  }
}
