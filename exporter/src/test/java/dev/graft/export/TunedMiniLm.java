package dev.graft.export;

import dev.graft.fixtures.PretrainedModels;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.PassManager;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.recipe.Recipe;
import dev.graft.rewrite.peft.ClassificationHeadPass;
import dev.graft.rewrite.peft.LayerNormAffinePass;
import dev.graft.rewrite.peft.LoraPass;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;

/**
 * The real all-MiniLM-L6-v2 as the exporter tests use it: read once, copied per test, tuned with
 * LoRA (r = 8 on query and value, dropout 0.1) + LayerNorm-affine on every norm + a mean-pooling
 * head, with every trainable set to random values to stand in for training (B non-zero, so the
 * LoRA update is really there).
 */
final class TunedMiniLm {
  static final Targets QUERY_VALUE = Targets.glob("layer.*.attention.{query,value}");
  static final ClassificationHeadPass.Config HEAD =
      ClassificationHeadPass.Config.of(2, ClassificationHeadPass.Pooling.MEAN).withSeed(5);

  private final byte[] bytes;
  final Path path;

  TunedMiniLm() {
    path = PretrainedModels.miniLm();
    try {
      bytes = Files.readAllBytes(path);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  Model base() {
    return WorkingModels.of(ModelIO.fromBytes(bytes, path.getParent()));
  }

  /** The base model with only the head (same seed, same weights as the tuned head before training). */
  Model baseWithHead() {
    Model m = base();
    new PassManager(List.of(new ClassificationHeadPass(HEAD))).run(m);
    return m;
  }

  /**
   * LoRA + LayerNorm-affine + head, every trainable random from {@code seed}. Made from a recipe,
   * as graft rewrite and graft train make models, so the applied passes are recorded.
   */
  Model tuned(long seed) {
    Model m = base();
    Recipe.parse(
            """
            passes:
              - {method: lora, targets: "layer.*.attention.{query,value}", dropout: 0.1}
              - {method: layernorm-affine, targets: "**"}
              - {method: classification-head, classes: 2, pooling: mean, seed: 5}
            """,
            "tuned.yaml")
        .manager()
        .run(m);
    randomise(m, seed);
    return m;
  }

  /** LoRA alone (no head), B random from {@code seed}. */
  Model loraOnly(long seed) {
    Model m = base();
    Recipe.parse("passes: [{method: lora, targets: \"layer.*.attention.{query,value}\"}]", "lora.yaml").manager().run(m);
    randomise(m, seed);
    return m;
  }

  /** Sets every trainable to small Gaussian values, as training would. */
  static void randomise(Model m, long seed) {
    SplittableRandom r = new SplittableRandom(seed);
    Graph g = m.graph();
    for (TrainableRegistry.Entry e : TrainableRegistry.read(m)) {
      if (e.role().equals("A")) continue; // A keeps its Kaiming draw
      Value v = g.initializer(e.initializer()).orElseThrow();
      Tensor t = v.initializer().orElseThrow();
      float[] data = new float[Math.toIntExact(t.numElements())];
      double std = e.role().equals("B") ? 0.05 : 0.1;
      for (int i = 0; i < data.length; i++) data[i] = (float) (r.nextGaussian() * std);
      g.setInitializer(v, DenseTensor.ofFloats(v.name(), t.dims(), data));
    }
  }
}
