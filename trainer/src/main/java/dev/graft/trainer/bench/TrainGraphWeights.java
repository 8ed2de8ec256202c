package dev.graft.trainer.bench;

import dev.graft.ir.DataType;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.recipe.Recipe;
import dev.graft.trainer.task.CausalLmTask;
import dev.graft.trainer.task.Objective;
import dev.graft.trainer.train.TrainStepGraph;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Collectors;

/**
 * What the frozen weights of a causal-LM train-step graph weigh, by element type: the graph
 * {@code graft train --task causal-lm} hands ONNX Runtime (the training copy, with GenAI's contrib
 * ops decomposed and MatMulNBits weights kept packed). For the 4-bit vs fp32 comparison of
 * docs/decoders.md:
 *
 * <pre>
 *   java -cp tools/target/graft.jar dev.graft.trainer.bench.TrainGraphWeights MODEL RECIPE
 * </pre>
 */
public final class TrainGraphWeights {
  private TrainGraphWeights() {}

  public static void main(String[] args) throws Exception {
    if (args.length != 2) {
      System.err.println("usage: TrainGraphWeights MODEL RECIPE");
      System.exit(2);
    }
    Model m = WorkingModels.load(Path.of(args[0]));
    Recipe.parse(Files.readString(Path.of(args[1])), args[1]).manager().run(m);
    Set<String> trainables =
        TrainableRegistry.read(m).stream().map(TrainableRegistry.Entry::initializer).collect(Collectors.toSet());
    Objective o = new CausalLmTask().objective(m);
    TrainStepGraph g = TrainStepGraph.builder(o.model()).logits(o.output()).labels(o.labels()).loss(o.loss())
        .trainables(trainables).build();
    Model step = g.trainStep();
    Map<DataType, long[]> frozen = new TreeMap<>();
    for (Value v : step.graph().initializers()) {
      Tensor t = v.initializer().orElseThrow();
      long bytes = t.dataType().byteCount(t.numElements());
      if (trainables.contains(v.name())) continue;
      long[] c = frozen.computeIfAbsent(t.dataType(), k -> new long[2]);
      c[0]++;
      c[1] += bytes;
    }
    long total = frozen.values().stream().mapToLong(c -> c[1]).sum();
    System.out.printf("%s: frozen initializers in the train-step graph %,d bytes (%.1f MiB)%n", args[0], total, total / 1048576.0);
    for (Map.Entry<DataType, long[]> e : frozen.entrySet()) {
      System.out.printf("  %-8s %4d tensors %,14d bytes%n", e.getKey(), e.getValue()[0], e.getValue()[1]);
    }
    long trained = g.params().stream().mapToLong(TrainStepGraph.Param::numElements).sum();
    System.out.printf("  trainable (graph inputs, fp32) %,d parameters in %d tensors%n", trained, g.params().size());
  }
}
