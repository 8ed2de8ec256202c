package dev.graft.ir.infer;

import dev.graft.ir.Model;
import java.util.function.Supplier;

/** One small graph for a table of rule tests; the name shows in the test report. */
record RuleCase(String name, Supplier<Model> model) {
  @Override
  public String toString() {
    return name;
  }
}
