package dev.graft.tools.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import org.junit.jupiter.api.Test;

/** Every command's --help renders cleanly: picocli warns on a bad format string, such as a lone %. */
class HelpTest {
  @Test
  void everyCommandsHelpRendersWithoutFormatWarnings() {
    List<String> commands = List.of("inspect", "convert", "rewrite", "train", "eval", "export", "quickstart");
    java.io.PrintStream oldErr = System.err;
    java.io.ByteArrayOutputStream captured = new java.io.ByteArrayOutputStream();
    System.setErr(new java.io.PrintStream(captured, true));
    try {
      CliRun top = CliRun.of("--help");
      assertThat(top.exit()).isZero();
      for (String c : commands) {
        assertThat(top.out()).contains(c);
        CliRun help = CliRun.of(c, "--help");
        assertThat(help.exit()).as(c).isZero();
        assertThat(help.out()).as(c).contains("Usage: graft " + c).contains("Examples:");
        assertThat(help.out() + help.err()).as(c).doesNotContain("Could not format").doesNotContain("%n");
      }
    } finally {
      System.setErr(oldErr);
    }
    assertThat(captured.toString()).doesNotContain("picocli WARN");
  }
}
