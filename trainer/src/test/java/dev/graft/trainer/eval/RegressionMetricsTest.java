package dev.graft.trainer.eval;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import org.junit.jupiter.api.Test;

/** Closed forms worked by hand; Spearman's ties take their average rank, as scipy does. */
class RegressionMetricsTest {
  @Test
  void errorsAndCorrelationsOfASmallCase() {
    double[] y = {1, 2, 3, 4};
    double[] p = {1.5, 1.5, 3.5, 5};
    RegressionMetrics m = RegressionMetrics.of(y, p);
    // |d| = .5 .5 .5 1; d^2 = .25 .25 .25 1
    assertThat(m.mae()).isCloseTo(2.5 / 4, within(1e-12));
    assertThat(m.rmse()).isCloseTo(Math.sqrt(1.75 / 4), within(1e-12));
    // Pearson: y - 2.5 = -1.5 -.5 .5 1.5; p - 2.875 = -1.375 -1.375 .625 2.125
    double sxy = 1.5 * 1.375 + .5 * 1.375 + .5 * .625 + 1.5 * 2.125;
    double sxx = 5;
    double syy = 2 * 1.375 * 1.375 + .625 * .625 + 2.125 * 2.125;
    assertThat(m.pearson()).isCloseTo(sxy / Math.sqrt(sxx * syy), within(1e-12));
    // Ranks of p: 1.5 1.5 3 4 (tie); of y: 1 2 3 4. Pearson of the ranks:
    // y - 2.5 as above; rp - 2.5 = -1 -1 .5 1.5 -> sxy = 1.5 + .5 + .25 + 2.25 = 4.5, syy = 1+1+.25+2.25 = 4.5
    assertThat(m.spearman()).isCloseTo(4.5 / Math.sqrt(5 * 4.5), within(1e-12));
    assertThat(RegressionMetrics.ranks(new double[] {3, 1, 3, 2})).containsExactly(3.5, 1, 3.5, 2);
  }

  @Test
  void aMonotoneButCurvedFitHasSpearmanOneAndAConstantHasNoCorrelation() {
    double[] y = {1, 2, 3, 4, 5};
    RegressionMetrics cube = RegressionMetrics.of(y, new double[] {1, 8, 27, 64, 125});
    assertThat(cube.spearman()).isCloseTo(1, within(1e-12));
    assertThat(cube.pearson()).isLessThan(1);
    assertThat(RegressionMetrics.of(y, new double[] {2, 2, 2, 2, 2}).pearson()).isNaN();
  }
}
