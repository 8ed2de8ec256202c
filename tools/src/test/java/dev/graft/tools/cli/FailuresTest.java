package dev.graft.tools.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.common.collect.ImmutableList;
import dev.graft.export.ExportVerifier;
import org.junit.jupiter.api.Test;

/** {@link Failures#describe}: a failed export check is the export's own one-line message, not "a bug". */
class FailuresTest {
  @Test
  void aFailedExportVerificationIsReportedAsItsOwnMessage() {
    var v = new ExportVerifier.Verification(ImmutableList.of(new ExportVerifier.OutputDiff("logits", 0.5)), 1e-4);

    String said = Failures.describe(new ExportVerifier.VerificationFailedException(v));

    assertThat(said).startsWith("Export verification failed: output 'logits'").contains("Nothing was written");
    assertThat(said).doesNotContain("bug in Graft");
  }
}
