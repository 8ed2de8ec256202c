package dev.graft.tools.cli;

import dev.graft.fixtures.PretrainedModels;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.GraphPass;
import dev.graft.rewrite.PassManager;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.peft.LoraPass;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;

/**
 * The real all-MiniLM-L6-v2 as the export and check tests use it: adapted by passes (or a recipe's,
 * so the model records what was applied), then every trainable set to N(0, 0.05²) from a seed to
 * stand in for training, so that B is non-zero and the update is really there. LoRA's A keeps its
 * Kaiming draw unless a test asks for it too.
 */
final class TrainedMiniLm {
  private TrainedMiniLm() {}

  /** MiniLM loaded as every CLI path loads it: upgraded to the working opset (17). */
  static Model base() {
    return WorkingModels.load(PretrainedModels.miniLm());
  }

  /** LoRA with its defaults on every attention's query and value. */
  static LoraPass loraOnQueryValue() {
    return new LoraPass(Targets.glob("layer.*.attention.{query,value}"), LoraPass.Config.defaults());
  }

  /** {@code m} after {@code passes}, every trainable but LoRA's A random from {@code seed}, saved as {@code file}. */
  static Path tune(Model m, List<GraphPass> passes, long seed, Path file) {
    new PassManager(passes).run(m);
    randomise(m, seed, false);
    ModelIO.save(m, file);
    return file;
  }

  /** Sets every trainable (LoRA's A too when {@code includingA}) to N(0, 0.05²) from {@code seed}. */
  static void randomise(Model m, long seed, boolean includingA) {
    SplittableRandom r = new SplittableRandom(seed);
    Graph g = m.graph();
    for (TrainableRegistry.Entry e : TrainableRegistry.read(m)) {
      if (!includingA && e.role().equals("A")) continue;
      Value v = g.initializer(e.initializer()).orElseThrow();
      Tensor t = v.initializer().orElseThrow();
      float[] d = new float[Math.toIntExact(t.numElements())];
      for (int i = 0; i < d.length; i++) d[i] = (float) (r.nextGaussian() * 0.05);
      g.setInitializer(v, DenseTensor.ofFloats(v.name(), t.dims(), d));
    }
  }
}
