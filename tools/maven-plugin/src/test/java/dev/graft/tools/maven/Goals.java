package dev.graft.tools.maven;

import java.io.File;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.maven.plugin.logging.SystemStreamLog;

/** Configured goals, as Maven would inject their parameters, with their info log captured. */
final class Goals {
  private Goals() {}

  /** Records info lines (and still prints them, for the test report). */
  static final class CapturingLog extends SystemStreamLog {
    final List<String> lines = new ArrayList<>();

    @Override
    public void info(CharSequence content) {
      lines.add(content.toString());
      super.info(content);
    }

    String text() {
      return String.join("\n", lines);
    }
  }

  static RewriteMojo rewrite(Path model, Path recipe, Path output, CapturingLog log) {
    RewriteMojo g = new RewriteMojo();
    g.model = file(model);
    g.recipe = file(recipe);
    g.output = file(output);
    g.setLog(log);
    return g;
  }

  static ExportMojo export(Path tuned, Path output, CapturingLog log) {
    ExportMojo g = new ExportMojo();
    g.tuned = file(tuned);
    g.output = file(output);
    g.setLog(log);
    return g;
  }

  private static File file(Path p) {
    return p == null ? null : p.toFile();
  }
}
