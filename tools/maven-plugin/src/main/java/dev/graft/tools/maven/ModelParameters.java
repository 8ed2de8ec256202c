package dev.graft.tools.maven;

import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.rewrite.TrainableRegistry;

/** The parameter counts a goal logs: all weights of the main graph, and the trainable ones. */
record ModelParameters(long total, long trainable) {

  static ModelParameters of(Model m) {
    long total = 0;
    for (Value v : m.graph().initializers()) {
      total += v.initializer().map(t -> t.numElements()).orElse(0L);
    }
    return new ModelParameters(total, TrainableRegistry.parameterCount(m));
  }

  /** {@code "22,713,216 parameters, 73,728 trainable (0.32%)"}. */
  String summary() {
    return String.format(
        "%,d parameters, %,d trainable (%.2f%%)", total, trainable, total == 0 ? 0.0 : 100.0 * trainable / total);
  }
}
