package dev.graft.tools.bench;

import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.trainer.train.LrSchedule;
import dev.graft.trainer.train.Loss;
import dev.graft.trainer.train.StepResult;
import dev.graft.trainer.train.TrainStepGraph;
import dev.graft.trainer.train.Trainer;
import java.nio.file.Path;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * The big-model proof's training step, run as a child process: loads a LoRA-rewritten model,
 * builds the train-step graph with a mean-squared-error loss on {@code logits}, lets ORT open it
 * from a file ({@code SessionFile}: the frozen weights are read from the model's own data file),
 * runs {@code STEPS} real AdamW steps on one fixed random batch and target, prints each loss and
 * saves the tuned model.
 *
 * <pre>
 *   java -cp ... dev.graft.tools.bench.BigModelTrain LORA.onnx TUNED.onnx STEPS THREADS LR
 * </pre>
 */
public final class BigModelTrain {
  private BigModelTrain() {}

  public static void main(String[] args) throws Exception {
    Path in = Path.of(args[0]);
    Path out = Path.of(args[1]);
    int steps = Integer.parseInt(args[2]);
    int threads = Integer.parseInt(args[3]);
    double lr = Double.parseDouble(args[4]);
    Model model = WorkingModels.load(in);
    TrainStepGraph graphs =
        TrainStepGraph.builder(model).loss(Loss.meanSquaredError()).clipGradNorm(1.0).build();
    Value x = model.graph().inputs().get(0);
    long[] xd = sizes(x);
    long[] yd = sizes(model.graph().outputs().get(0));
    SplittableRandom r = new SplittableRandom(7);
    Map<String, Tensor> batch =
        Map.of(x.name(), floats(x.name(), xd, r, 1.0), "labels", floats("labels", yd, r, 1.0));
    try (Trainer t = Trainer.builder(graphs).schedule(LrSchedule.constant(lr)).intraOpThreads(threads).build()) {
      for (int i = 0; i < steps; i++) {
        StepResult s = t.trainStep(batch);
        System.out.printf(java.util.Locale.ROOT, "step %d loss %.6f%n", s.step(), s.loss());
      }
      // As graft train saves (Pipeline): the frozen weights hard-linked from the base, not copied.
      ModelIO.saveWithLinkedData(t.exportTrainedModel(), out);
    }
  }

  /** Static sizes, symbolic dims (the batch) as 1. */
  private static long[] sizes(Value v) {
    return v.shape().orElseThrow().dims().stream().mapToLong(d -> d.isFixed() ? d.value() : 1).toArray();
  }

  private static Tensor floats(String name, long[] dims, SplittableRandom r, double spread) {
    int n = 1;
    for (long d : dims) n *= (int) d;
    float[] v = new float[n];
    for (int i = 0; i < n; i++) v[i] = (float) (r.nextDouble(-spread, spread));
    return DenseTensor.ofFloats(name, dims, v);
  }
}
