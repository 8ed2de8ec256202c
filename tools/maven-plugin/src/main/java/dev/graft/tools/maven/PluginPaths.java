package dev.graft.tools.maven;

import dev.graft.ir.Model;
import dev.graft.ir.convert.WorkingModels;
import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.apache.maven.plugin.MojoExecutionException;

/**
 * Checks on the files a goal reads and writes, made before the library runs, so that a wrong path
 * in a pom gets a message naming the parameter and the path rather than a failure deep inside.
 */
final class PluginPaths {
  private PluginPaths() {}

  /** The path of a required input file; fails unless it names a readable regular file. */
  static Path requireReadableFile(String goal, String parameter, File file, String what)
      throws MojoExecutionException {
    if (file == null) {
      throw new MojoExecutionException(
          goal + ": parameter '" + parameter + "' is not set. Add <" + parameter + ">path/to/" + what
              + "</" + parameter + "> to the plugin's <configuration>.");
    }
    Path p = file.toPath();
    if (!Files.exists(p)) {
      throw new MojoExecutionException(
          goal + ": cannot read " + what + " '" + p + "' (parameter '" + parameter + "'): no such file."
              + " Check the path; relative paths are resolved against the project's folder.");
    }
    if (Files.isDirectory(p)) {
      throw new MojoExecutionException(
          goal + ": cannot read " + what + " '" + p + "' (parameter '" + parameter + "'): it is a folder."
              + " Give the file inside it.");
    }
    if (!Files.isReadable(p)) {
      throw new MojoExecutionException(
          goal + ": cannot read " + what + " '" + p + "' (parameter '" + parameter + "'): permission denied."
              + " Check the file's permissions.");
    }
    return p;
  }

  /**
   * The path of a required output file; creates its folder (build outputs usually go under a
   * {@code target/} subfolder that does not exist yet) and fails if the path is a folder.
   */
  static Path requireWritableFile(String goal, String parameter, File file) throws MojoExecutionException {
    if (file == null) {
      throw new MojoExecutionException(
          goal + ": parameter '" + parameter + "' is not set. Add <" + parameter
              + ">${project.build.directory}/model.onnx</" + parameter + "> to the plugin's <configuration>.");
    }
    Path p = file.toPath().toAbsolutePath();
    if (Files.isDirectory(p)) {
      throw new MojoExecutionException(
          goal + ": cannot write '" + p + "' (parameter '" + parameter + "'): it is a folder. Give a file"
              + " name, e.g. '" + p.resolve("model.onnx") + "'.");
    }
    createParent(goal, parameter, p);
    return p;
  }

  /** Creates the parent folder of {@code p}, explaining a failure. */
  static void createParent(String goal, String parameter, Path p) throws MojoExecutionException {
    Path folder = p.toAbsolutePath().getParent();
    try {
      Files.createDirectories(folder);
    } catch (IOException e) {
      throw new MojoExecutionException(
          goal + ": cannot create folder '" + folder + "' for parameter '" + parameter + "': " + e
              + ". Check that no file has that name and that the parent folder is writable.",
          e);
    }
  }

  /**
   * Loads {@code path} the way the CLI's rewrite and export do ({@link WorkingModels#load}: upgraded
   * to the working opset), naming the goal and the file when it is not a model Graft can read.
   */
  static Model loadModel(String goal, Path path) throws MojoExecutionException {
    try {
      return WorkingModels.load(path);
    } catch (RuntimeException e) {
      throw GoalFailures.wrap(goal, "cannot load model '" + path + "'", e);
    }
  }
}
