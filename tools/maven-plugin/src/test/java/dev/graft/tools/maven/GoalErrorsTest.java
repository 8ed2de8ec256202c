package dev.graft.tools.maven;

import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.graft.fixtures.TinyModels;
import dev.graft.ir.io.ModelIO;
import java.nio.file.Files;
import java.nio.file.Path;
import org.apache.maven.plugin.MojoExecutionException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The goals' errors say what went wrong, where, and how to fix it; and they write nothing. */
class GoalErrorsTest {
  @TempDir Path dir;

  @Test
  void missingModelNamesTheParameterAndThePath() throws Exception {
    Path recipe = Files.writeString(dir.resolve("lora.yaml"), "passes:\n  - method: lora\n    rank: 2\n");
    Path missing = dir.resolve("nope/model.onnx");
    Path out = dir.resolve("tuned.onnx");
    assertThatThrownBy(() -> Goals.rewrite(missing, recipe, out, new Goals.CapturingLog()).execute())
        .isInstanceOf(MojoExecutionException.class)
        .hasMessageContaining("graft:rewrite")
        .hasMessageContaining("parameter 'model'")
        .hasMessageContaining(missing.toString())
        .hasMessageContaining("no such file");
    org.assertj.core.api.Assertions.assertThat(out).doesNotExist();
  }

  @Test
  void missingRecipeNamesTheParameter() {
    Path model = saveBase();
    Path missing = dir.resolve("recipe.yaml");
    assertThatThrownBy(() -> Goals.rewrite(model, missing, dir.resolve("t.onnx"), new Goals.CapturingLog()).execute())
        .isInstanceOf(MojoExecutionException.class)
        .hasMessageContaining("parameter 'recipe'")
        .hasMessageContaining(missing.toString());
  }

  @Test
  void unsetOutputSaysWhatToAdd() throws Exception {
    Path model = saveBase();
    Path recipe = Files.writeString(dir.resolve("lora.yaml"), "passes:\n  - method: lora\n    rank: 2\n");
    assertThatThrownBy(() -> Goals.rewrite(model, recipe, null, new Goals.CapturingLog()).execute())
        .isInstanceOf(MojoExecutionException.class)
        .hasMessageContaining("parameter 'output' is not set")
        .hasMessageContaining("<output>");
  }

  @Test
  void aTargetThatMatchesNothingListsTheModules() throws Exception {
    Path model = saveBase();
    Path recipe = Files.writeString(dir.resolve("lora.yaml"), "passes:\n  - method: lora\n    targets: \"layer.*.attention.qurey\"\n");
    Path out = dir.resolve("tuned.onnx");
    assertThatThrownBy(() -> Goals.rewrite(model, recipe, out, new Goals.CapturingLog()).execute())
        .isInstanceOf(MojoExecutionException.class)
        .hasMessageContaining("cannot apply recipe '" + recipe + "'")
        .hasMessageContaining("layer.*.attention.qurey")
        .hasMessageContaining("matches no linear module")
        .hasMessageContaining("layer.0.attention.query");
    org.assertj.core.api.Assertions.assertThat(out).doesNotExist();
  }

  @Test
  void aBrokenRecipeNamesTheFile() throws Exception {
    Path model = saveBase();
    Path recipe = Files.writeString(dir.resolve("bad.yaml"), "- just\n- a list\n");
    assertThatThrownBy(() -> Goals.rewrite(model, recipe, dir.resolve("t.onnx"), new Goals.CapturingLog()).execute())
        .isInstanceOf(MojoExecutionException.class)
        .hasMessageContaining("recipe '" + recipe + "' is invalid");
  }

  @Test
  void aMisspeltRecipeKeyNamesTheEntryAndTheKey() throws Exception {
    Path model = saveBase();
    Path recipe = Files.writeString(dir.resolve("typo.yaml"), "passes:\n  - method: lora\n    rnak: 8\n");
    Path out = dir.resolve("t.onnx");
    assertThatThrownBy(() -> Goals.rewrite(model, recipe, out, new Goals.CapturingLog()).execute())
        .isInstanceOf(MojoExecutionException.class)
        .hasMessageContaining("graft:rewrite: recipe '" + recipe + "' is invalid")
        .hasMessageContaining("passes[0]")
        .hasMessageContaining("rnak")
        .hasMessageContaining("rank");
    org.assertj.core.api.Assertions.assertThat(out).doesNotExist();
  }

  @Test
  void aFileThatIsNotAModelIsNamed() throws Exception {
    Path notModel = Files.writeString(dir.resolve("tuned.onnx"), "not protobuf at all, just text");
    Path out = dir.resolve("merged.onnx");
    assertThatThrownBy(() -> Goals.export(notModel, out, new Goals.CapturingLog()).execute())
        .isInstanceOf(MojoExecutionException.class)
        .hasMessageContaining("graft:export: cannot load model '" + notModel + "'");
    org.assertj.core.api.Assertions.assertThat(out).doesNotExist();
  }

  @Test
  void exportNeedsMergeOrAdapterOnly() {
    ExportMojo g = Goals.export(saveBase(), dir.resolve("m.onnx"), new Goals.CapturingLog());
    g.merge = false;
    assertThatThrownBy(g::execute)
        .isInstanceOf(MojoExecutionException.class)
        .hasMessageContaining("nothing to export")
        .hasMessageContaining("<merge>true</merge>");
  }

  @Test
  void adapterOnlyNeedsTheBase() {
    ExportMojo g = Goals.export(saveBase(), dir.resolve("adapter"), new Goals.CapturingLog());
    g.adapterOnly = true;
    assertThatThrownBy(g::execute).isInstanceOf(MojoExecutionException.class).hasMessageContaining("<base>");
  }

  @Test
  void exportOfAnUntunedModelRefusesAdapterOnly() {
    Path base = saveBase();
    ExportMojo g = Goals.export(base, dir.resolve("adapter"), new Goals.CapturingLog());
    g.adapterOnly = true;
    g.base = base.toFile();
    assertThatThrownBy(g::execute)
        .isInstanceOf(MojoExecutionException.class)
        .hasMessageContaining("graft:export: cannot export the adapter of")
        .hasMessageContaining("no trainable parameters recorded");
  }

  private Path saveBase() {
    Path base = dir.resolve("base.onnx");
    ModelIO.save(TinyModels.bertLike(TinyModels.Flavour.FUSED_OPSET17), base);
    return base;
  }
}
