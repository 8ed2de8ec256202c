package dev.graft.ir.infer;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Base of the rule-table tests: each subclass declares {@code static Stream<RuleCase> cases()},
 * and every case's inferred output types must match what ONNX Runtime produces. JUnit resolves
 * {@code cases} in the class being run, so the one test method here serves every table.
 */
abstract class OrtRuleTable {
  @ParameterizedTest(name = "{0}")
  @MethodSource("cases")
  void agreesWithOrt(RuleCase c) throws Exception {
    assertThat(OrtShapes.assertInferenceMatchesOrt(c.model().get())).isPositive();
  }
}
