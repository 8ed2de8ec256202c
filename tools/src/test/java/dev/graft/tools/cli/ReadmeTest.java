package dev.graft.tools.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/** The README documents only what exists, and .ci/run runs what the README says it runs. */
class ReadmeTest {
  private static Path root;
  private static String readme;

  @BeforeAll
  static void findRepoRoot() throws Exception {
    Path p = Path.of("").toAbsolutePath();
    while (p != null && !Files.isDirectory(p.resolve(".ci"))) p = p.getParent();
    assertThat(p).as("repo root (the folder with .ci/) above %s", Path.of("").toAbsolutePath())
        .isNotNull();
    root = p;
    readme = Files.readString(root.resolve("README.md"));
  }

  @Test
  void opensWithTheTwoSetupCommands() {
    int build = readme.indexOf("mvn -q package -DskipTests && bin/graft inspect");
    int tests = readme.indexOf("bash .ci/run");
    assertThat(build).isPositive();
    assertThat(tests).isGreaterThan(build);
    // Both come before the first section heading.
    assertThat(readme.indexOf("\n## ")).isGreaterThan(tests);
  }

  @Test
  void ciRunRunsTheTestCommandTheReadmeNames() throws Exception {
    List<String> commands =
        Files.readAllLines(root.resolve(".ci/run")).stream()
            .map(String::strip)
            .filter(l -> l.startsWith("mvn "))
            .toList();
    assertThat(commands).containsExactly("mvn -B verify");
    assertThat(readme).contains("`mvn -B verify`");
    assertThat(Files.readString(root.resolve(".ci/run"))).contains("set -euo pipefail");
  }

  @Test
  void everyDocumentedCommandAndOptionExists() {
    CommandLine cli = new CommandLine(new Graft());
    Matcher m = Pattern.compile("graft ([a-z]+)([^`\\n|]*)").matcher(readme);
    int seen = 0;
    while (m.find()) {
      String name = m.group(1);
      assertThat(cli.getSubcommands()).as("README mentions 'graft %s'", name).containsKey(name);
      CommandLine sub = cli.getSubcommands().get(name);
      Matcher opt = Pattern.compile("--[a-z][a-z0-9-]*").matcher(m.group(2));
      while (opt.find()) {
        assertThat(sub.getCommandSpec().findOption(opt.group()))
            .as("README documents 'graft %s %s'", name, opt.group())
            .isNotNull();
      }
      seen++;
    }
    assertThat(seen).isGreaterThanOrEqualTo(4);
  }
}
