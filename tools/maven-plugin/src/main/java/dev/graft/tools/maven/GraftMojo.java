package dev.graft.tools.maven;

import org.apache.maven.plugin.AbstractMojo;
import org.apache.maven.plugin.MojoExecutionException;
import org.apache.maven.plugin.logging.Log;
import org.apache.maven.plugins.annotations.Parameter;

/**
 * What every Graft goal shares: the {@code graft.skip} switch, checked before any parameter is
 * read, so a skipped goal never fails on a missing file. Public because Maven configures the
 * inherited parameter by reflection.
 */
public abstract class GraftMojo extends AbstractMojo {
  /** Skip this goal. */
  @Parameter(property = "graft.skip", defaultValue = "false")
  boolean skip;

  /** The goal's name as users write it, e.g. {@code graft:export}, for log lines and errors. */
  abstract String goal();

  /** The goal's work, when it is not skipped. */
  abstract void run(Log log) throws MojoExecutionException;

  @Override
  public final void execute() throws MojoExecutionException {
    Log log = getLog();
    if (skip) {
      log.info(goal() + " skipped (skip = true)");
      return;
    }
    run(log);
  }
}
