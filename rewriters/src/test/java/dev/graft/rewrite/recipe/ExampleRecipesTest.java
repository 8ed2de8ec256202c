package dev.graft.rewrite.recipe;

import dev.graft.ir.convert.WorkingModels;
import dev.graft.rewrite.method.Methods;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.fixtures.PretrainedModels;
import dev.graft.fixtures.TinyModels;
import dev.graft.ir.Model;
import dev.graft.ir.analysis.Verifier;
import dev.graft.ir.io.ModelIO;
import dev.graft.rewrite.PassManager;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.discover.LinearModule;
import dev.graft.rewrite.discover.Module;
import dev.graft.rewrite.discover.ModuleDiscovery;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** The recipes in examples/recipes: one per method, and each one rewrites MiniLM into a valid model. */
class ExampleRecipesTest {

  /** examples/recipes at the repository root, found from the module directory tests run in. */
  static Path examples() {
    for (Path p = Path.of("").toAbsolutePath(); p != null; p = p.getParent()) {
      Path candidate = p.resolve("examples").resolve("recipes");
      if (Files.isDirectory(candidate)) return candidate;
    }
    throw new AssertionError("examples/recipes not found above " + Path.of("").toAbsolutePath());
  }

  static List<Path> recipes() throws IOException {
    try (Stream<Path> files = Files.list(examples())) {
      return files.filter(f -> f.toString().endsWith(".yaml")).sorted().collect(Collectors.toList());
    }
  }

  /** Every method has a recipe named after it (other recipes, such as the quickstart's, may sit beside them). */
  @Test
  void oneRecipePerMethodNamedAfterIt() throws IOException {
    List<String> names =
        recipes().stream().map(f -> f.getFileName().toString().replaceFirst("\\.yaml$", "")).collect(Collectors.toList());
    assertThat(names).containsAll(Methods.FACTORIES.keySet());
    for (String method : Methods.FACTORIES.keySet()) {
      assertThat(Recipe.load(examples().resolve(method + ".yaml")).methods()).as("methods of %s.yaml", method).contains(method);
    }
  }

  static List<Path> visionRecipes() throws IOException {
    try (Stream<Path> files = Files.list(examples().resolve("vision"))) {
      return files.filter(f -> f.toString().endsWith(".yaml")).sorted().collect(Collectors.toList());
    }
  }

  /** examples/recipes/vision: the cnn-* recipes apply to MobileNetV3, the vit-* ones to the ViT fixture. */
  @ParameterizedTest(name = "{0}")
  @MethodSource("visionRecipes")
  void visionRecipesApplyToTheirModelAndVerify(Path recipe) throws Exception {
    Recipe r = Recipe.load(recipe);
    assertThat(r.description()).as("a description line").isPresent();
    String name = recipe.getFileName().toString();
    assertThat(name).as("vision recipes say their family").matches("(cnn|vit)-.*");
    Model m =
        name.startsWith("cnn-")
            ? WorkingModels.load(dev.graft.fixtures.PretrainedCnn.mobileNetV3())
            : dev.graft.fixtures.VisionTransformer.build(dev.graft.fixtures.VisionTransformer.Config.tiny(), 1);
    List<PassResult> results = applyAll(r, m);
    Verifier.verify(m);
    assertThat(results).allMatch(PassResult::changed);
    long added = results.stream().mapToLong(PassResult::parametersAdded).sum();
    assertThat(added).isPositive().isEqualTo(TrainableRegistry.parameterCount(m));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("recipes")
  void appliesToMiniLmAndVerifies(Path recipe) throws Exception {
    Recipe r = Recipe.load(recipe);
    assertThat(r.description()).as("a description line").isPresent();
    // The CNN methods' recipes apply to the real CNN (PaddleOCR's MobileNetV3), the others to MiniLM.
    boolean cnn = java.util.Set.of("conv-lora", "batchnorm-affine", "image-head").containsAll(r.methods());
    // Visual prompt tuning applies to the ViT fixture.
    boolean vit = java.util.Set.of("vpt").containsAll(r.methods());
    Model m =
        vit
            ? dev.graft.fixtures.VisionTransformer.build(dev.graft.fixtures.VisionTransformer.Config.tiny(), 1)
            : WorkingModels.load(cnn ? dev.graft.fixtures.PretrainedCnn.mobileNetV3() : PretrainedModels.miniLm());
    List<PassResult> results = applyAll(r, m);
    Verifier.verify(m);
    assertThat(results).allMatch(PassResult::changed);
    long added = results.stream().mapToLong(PassResult::parametersAdded).sum();
    assertThat(added).isPositive().isEqualTo(TrainableRegistry.parameterCount(m));

    // The metadata survives a save and load, and a second application changes nothing.
    Model reloaded = ModelIO.fromBytes(ModelIO.toBytes(m), null);
    assertThat(TrainableRegistry.read(reloaded)).isEqualTo(TrainableRegistry.read(m));
    assertThat(applyAll(r, reloaded)).noneMatch(PassResult::changed);
  }

  /**
   * Every stage's passes in order. A Taylor selection needs training data to pick its channels;
   * here it takes the first ceil(fraction * width) channels of each module it selects instead,
   * which exercises everything but the scores (TwoStageRunTest in trainer covers those).
   */
  static List<PassResult> applyAll(Recipe r, Model m) {
    List<PassResult> out = new ArrayList<>();
    for (Stage stage : r.stages()) {
      out.addAll(new PassManager(stage.passes()).run(m));
      if (stage.taylor().isPresent()) {
        TaylorSelection select = stage.taylor().get();
        Map<String, List<Integer>> firstChannels = new LinkedHashMap<>();
        for (Module mod : ModuleDiscovery.discover(m)) {
          if (mod instanceof LinearModule l && select.modules(m).contains(l.name())) {
            int k = (int) Math.ceil(select.fraction() * l.outFeatures());
            firstChannels.put(l.name(), IntStream.range(0, k).boxed().toList());
          }
        }
        out.addAll(new PassManager(List.of(select.pass(firstChannels))).run(m));
      }
    }
    return out;
  }

  @Test
  void loraRecipeIsTheClosedFormOnMiniLmAndFitsOtherEncoders() throws Exception {
    Recipe lora = Recipe.load(examples().resolve("lora.yaml"));
    Model m = WorkingModels.load(PretrainedModels.miniLm());
    assertThat(lora.manager().run(m).get(0).parametersAdded()).isEqualTo(6L * 2 * (384 * 8 + 8 * 384));
    for (TinyModels.Flavour f : TinyModels.Flavour.values()) {
      Model tiny = WorkingModels.of(TinyModels.bertLike(f));
      PassResult r = lora.manager().run(tiny).get(0);
      long h = TinyModels.BERT_HIDDEN;
      assertThat(r.parametersAdded()).as("%s", f).isEqualTo(TinyModels.BERT_LAYERS * 2L * (h * 8 + 8 * h));
    }
  }
}
