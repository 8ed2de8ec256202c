package dev.graft.tools.maven;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Model;
import dev.graft.ir.io.ModelIO;
import dev.graft.rewrite.GraphPass;
import dev.graft.rewrite.PassManager;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.recipe.Recipe;
import dev.graft.trainer.train.Int8Dequantization;
import java.io.File;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import org.apache.maven.plugin.MojoExecutionException;
import org.apache.maven.plugin.logging.Log;
import org.apache.maven.plugins.annotations.LifecyclePhase;
import org.apache.maven.plugins.annotations.Mojo;
import org.apache.maven.plugins.annotations.Parameter;

/**
 * {@code graft:rewrite}: applies a recipe's passes to a model, as {@code graft rewrite --recipe}
 * does.
 *
 * <pre>
 *   model.onnx ─load─► int8 linears dequantised (if any) ─► recipe passes (PassManager, model
 *                                                            verified after each) ─save─► output.onnx
 * </pre>
 *
 * The output records which initializers are trainable, so {@code graft:export} (or training) can
 * run on it as a later step. The save goes to a temporary file that is moved into place, so a
 * failed build never leaves half a model at {@code output}.
 */
@Mojo(name = "rewrite", defaultPhase = LifecyclePhase.GENERATE_RESOURCES, requiresProject = false, threadSafe = true)
public class RewriteMojo extends GraftMojo {
  static final String GOAL = "graft:rewrite";

  /** The model to rewrite (.onnx; external data beside it is read from its folder). */
  @Parameter(property = "graft.model", required = true)
  File model;

  /** The recipe (.yaml or .json) naming the passes and their targets. */
  @Parameter(property = "graft.recipe", required = true)
  File recipe;

  /** Where the rewritten model goes; its folder is created. */
  @Parameter(property = "graft.output", required = true)
  File output;

  @Override
  String goal() {
    return GOAL;
  }

  @Override
  void run(Log log) throws MojoExecutionException {
    Path in = PluginPaths.requireReadableFile(GOAL, "model", model, "model");
    Path recipePath = PluginPaths.requireReadableFile(GOAL, "recipe", recipe, "recipe");
    Path out = PluginPaths.requireWritableFile(GOAL, "output", output);

    List<GraphPass> passes;
    try {
      passes = Recipe.load(recipePath).passes();
    } catch (IOException e) {
      throw new MojoExecutionException(
          GOAL + ": cannot read recipe '" + recipePath + "' (parameter 'recipe'): " + e + ". Check the file.", e);
    } catch (RuntimeException e) {
      throw GoalFailures.wrap(GOAL, "recipe '" + recipePath + "' is invalid", e);
    }
    Model m = PluginPaths.loadModel(GOAL, in);
    log.info(GOAL + " loaded " + in + ": " + ModelParameters.of(m).summary());
    // As graft rewrite: an int8 model's linears are found (and later trained) in float form.
    Int8Dequantization.Report dequantized;
    try {
      dequantized = Int8Dequantization.apply(m);
    } catch (RuntimeException e) {
      throw GoalFailures.wrap(GOAL, "cannot dequantise the int8 model '" + in + "'", e);
    }
    if (dequantized.any()) log.info(GOAL + " " + dequantized.summary());
    ImmutableList<PassResult> results;
    try {
      results = new PassManager(passes, true).run(m);
    } catch (RuntimeException e) {
      throw GoalFailures.wrap(GOAL, "cannot apply recipe '" + recipePath + "' to '" + in + "'", e);
    }
    for (PassResult r : results) {
      log.info(GOAL + " " + r.summary());
      for (String note : r.notes()) log.info("  " + note);
    }
    try {
      ModelIO.save(m, out);
    } catch (RuntimeException e) {
      throw GoalFailures.wrap(GOAL, "cannot write the rewritten model to '" + out + "'", e);
    }
    log.info(GOAL + " wrote " + out + ": " + ModelParameters.of(m).summary());
  }
}
