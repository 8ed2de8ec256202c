package dev.graft.trainer.bench;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.graft.ir.Model;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.peft.ClassificationHeadPass;
import dev.graft.rewrite.recipe.Recipe;
import dev.graft.rewrite.peft.ClassificationHeadPass.Pooling;
import dev.graft.trainer.train.Device;
import dev.graft.trainer.train.LrSchedule;
import dev.graft.trainer.train.TrainSessionOptions;
import dev.graft.trainer.train.TrainStepGraph;
import dev.graft.trainer.train.Trainables;
import dev.graft.trainer.train.Trainer;
import java.io.IOException;
import java.io.InputStream;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;

/**
 * Train-step time against forward time on all-MiniLM-L6-v2, on the training path that
 * {@code graft train} takes: the model upgraded to the working opset, a recipe's passes applied
 * (by default {@code examples/recipes/quickstart.yaml}: LoRA r = 8 on query and value and a
 * mean-pooling head), then {@link TrainStepGraph} and {@link Trainer} as they are, with no
 * benchmark-only graph edits.
 *
 * <pre>
 *   java -cp ... dev.graft.trainer.bench.TrainStepBenchmark [--model all-minilm-l6-v2.onnx]
 *       [--recipe examples/recipes/quickstart.yaml | --recipe layernorm]
 *       [--batch 32] [--seq 64] [--threads 2] [--warmup 3] [--runs 10] [--full] [--compare PROPERTY=VALUE]
 * </pre>
 *
 * {@code --compare PROPERTY=VALUE} builds a second train step while that system property holds
 * (say {@code graft.train.mergedLora=0}) and runs it in turn with the first, in the same process
 * and on the same batch, so that an A/B of a pass switch sees the same load; it prints both
 * medians and minima and both loss trajectories.
 *
 * Without --model it reads the resource {@code all-minilm-l6-v2.onnx} from the classpath (the
 * langchain4j embeddings jar). {@code --recipe layernorm} trains every LayerNorm gamma and beta and
 * a mean-pooling head instead (the first version of this benchmark). Prints the median train-step
 * time (one fused session run: forward, loss, backward, AdamW), the median forward time of the
 * original opset-11 model at the same batch, their ratio, and peak memory: the process's resident
 * high-water mark (VmHWM) and the Java heap's peak.
 */
public final class TrainStepBenchmark {
  private TrainStepBenchmark() {}

  public static void main(String[] args) throws Exception {
    Map<String, String> opt = parse(args);
    int batch = Integer.parseInt(opt.getOrDefault("batch", "32"));
    int seq = Integer.parseInt(opt.getOrDefault("seq", "64"));
    int threads = Integer.parseInt(opt.getOrDefault("threads", "2"));
    int warmup = Integer.parseInt(opt.getOrDefault("warmup", "3"));
    int runs = Integer.parseInt(opt.getOrDefault("runs", "10"));
    Path modelPath = opt.containsKey("model") ? Path.of(opt.get("model")) : fromClasspath("all-minilm-l6-v2.onnx");

    // Rows of seq/2 to seq tokens (dynamic padding to the longest), or --full: every row seq tokens.
    boolean full = opt.containsKey("full");
    Map<String, Tensor> inputs = tokens(batch, seq, 1234, full);
    System.out.printf(Locale.ROOT, "model %s, batch %d x sequence %d, CPU, %d intra-op threads%n", modelPath, batch, seq, threads);

    // The train step as graft train builds it: upgraded, the recipe's passes, AdamW.
    Model model = WorkingModels.load(modelPath);
    String recipe = opt.getOrDefault("recipe", "examples/recipes/quickstart.yaml");
    TrainStepGraph.Builder builder;
    if (recipe.equals("layernorm")) {
      new ClassificationHeadPass(
              new ClassificationHeadPass.Config(2, Pooling.MEAN, "last_hidden_state", "attention_mask", false, 7))
          .run(model);
      List<String> trainables = new ArrayList<>(Trainables.matching(model, ".*LayerNorm\\.(weight|bias)"));
      trainables.addAll(ClassificationHeadPass.parameterNames(model));
      builder = TrainStepGraph.builder(model).trainables(trainables);
    } else {
      Recipe.load(Path.of(recipe)).manager().run(model);
      builder = TrainStepGraph.builder(model);
    }
    System.out.printf(Locale.ROOT, "recipe %s%n", recipe);
    long t0 = System.nanoTime();
    // Padding-free, as graft train builds it (the model's attention_mask input); --compare
    // graft.train.unpad=0 runs the padded step beside it.
    TrainStepGraph graphs = builder.clipGradNorm(1.0).unpadWhereMasked().build();
    long trainableCount = graphs.params().stream().mapToLong(TrainStepGraph.Param::numElements).sum();
    Map<String, Tensor> batchWithLabels = new HashMap<>(inputs);
    long[] labels = new long[batch];
    for (int i = 0; i < batch; i++) labels[i] = i % 2;
    batchWithLabels.put("labels", DenseTensor.ofLongs("labels", new long[] {batch}, labels));

    OrtEnvironment env = OrtEnvironment.getEnvironment();
    List<Double> forwardTimes = new ArrayList<>();
    List<Double> evalTimes = new ArrayList<>();
    List<Double> stepTimes = new ArrayList<>();
    // Process CPU time as well: on a shared machine wall time swings with other load.
    List<Double> forwardCpu = new ArrayList<>();
    List<Double> stepCpu = new ArrayList<>();
    // --compare PROPERTY=VALUE: a second train step, built with that system property, run in turn
    // with the first in the same process, so that both see the same load (A/B of a pass switch).
    String compare = opt.get("compare");
    List<Double> otherTimes = new ArrayList<>();
    List<Double> otherCpu = new ArrayList<>();
    double otherFirstLoss = Double.NaN;
    double otherLastLoss = Double.NaN;
    double firstLoss = Double.NaN;
    double lastLoss = Double.NaN;
    long rssBeforeTraining;
    // The forward session gets the trainer's settings (threads, spinning, arena), so that the
    // ratio compares the graphs, not the options.
    try (OrtSession.SessionOptions o = TrainSessionOptions.create(Device.cpu(), threads)) {
      // The original model's forward pass, as ORT runs it for inference.
      try (OrtSession forward = env.createSession(modelPath.toString(), o)) {
        Map<String, OnnxTensor> feeds = new HashMap<>();
        for (Map.Entry<String, Tensor> e : inputs.entrySet()) feeds.put(e.getKey(), toOrt(env, e.getValue()));
        for (int i = 0; i < warmup; i++) forward.run(feeds).close();
        rssBeforeTraining = vmHwmKb();
        Trainer other = compare == null ? null : trainerWith(compare, graphs, threads);
        try (other;
            Trainer trainer =
                Trainer.builder(graphs).schedule(LrSchedule.constant(1e-3)).intraOpThreads(threads).build()) {
          System.out.printf(Locale.ROOT, "train-step graph built and session opened in %.1f s; %d trainable parameters in %d tensors%n",
              (System.nanoTime() - t0) / 1e9, trainableCount, graphs.params().size());
          for (int i = 0; i < warmup; i++) {
            double loss = trainer.trainStep(batchWithLabels).loss();
            if (i == 0) firstLoss = loss;
            trainer.evalStep(batchWithLabels);
            if (other != null) {
              double l = other.trainStep(batchWithLabels).loss();
              if (i == 0) otherFirstLoss = l;
            }
          }
          // Interleaved, so that load from other processes hits all three alike.
          for (int i = 0; i < runs; i++) {
            long s0 = System.nanoTime();
            long c0 = cpuNanos();
            forward.run(feeds).close();
            forwardTimes.add((System.nanoTime() - s0) / 1e6);
            forwardCpu.add((cpuNanos() - c0) / 1e6);
            s0 = System.nanoTime();
            c0 = cpuNanos();
            lastLoss = trainer.trainStep(batchWithLabels).loss();
            stepTimes.add((System.nanoTime() - s0) / 1e6);
            stepCpu.add((cpuNanos() - c0) / 1e6);
            s0 = System.nanoTime();
            trainer.evalStep(batchWithLabels);
            evalTimes.add((System.nanoTime() - s0) / 1e6);
            if (other != null) {
              s0 = System.nanoTime();
              c0 = cpuNanos();
              otherLastLoss = other.trainStep(batchWithLabels).loss();
              otherTimes.add((System.nanoTime() - s0) / 1e6);
              otherCpu.add((cpuNanos() - c0) / 1e6);
            }
          }
        }
        feeds.values().forEach(OnnxTensor::close);
      }
    }
    double forwardMs = median(forwardTimes);
    double stepMs = median(stepTimes);
    System.out.printf(Locale.ROOT, "forward (original model):  median %.1f ms over %d runs  %s%n", forwardMs, runs, range(forwardTimes));
    System.out.printf(Locale.ROOT, "eval graph (fwd + head + loss, opset 17): median %.1f ms  %s%n", median(evalTimes), range(evalTimes));
    System.out.printf(Locale.ROOT, "train step (fused graph):  median %.1f ms over %d runs  %s (loss %.4f -> %.4f)%n",
        stepMs, runs, range(stepTimes), firstLoss, lastLoss);
    System.out.printf(Locale.ROOT, "ratio step / forward:      %.2f  (target <= 2.1, issue 15)%n", stepMs / forwardMs);
    System.out.printf(Locale.ROOT, "process CPU time:          forward %.1f ms, step %.1f ms (medians), ratio %.2f%n",
        median(forwardCpu), median(stepCpu), median(stepCpu) / median(forwardCpu));
    if (compare != null) {
      System.out.printf(Locale.ROOT, "train step with %s: median %.1f ms  %s (loss %.4f -> %.4f); ratio %.2f; CPU %.1f ms, ratio %.2f%n",
          compare, median(otherTimes), range(otherTimes), otherFirstLoss, otherLastLoss, median(otherTimes) / forwardMs,
          median(otherCpu), median(otherCpu) / median(forwardCpu));
      System.out.printf(Locale.ROOT, "step minima:               %.1f ms as built, %.1f ms with %s (%d runs each, alternated)%n",
          stepTimes.stream().mapToDouble(d -> d).min().orElse(Double.NaN),
          otherTimes.stream().mapToDouble(d -> d).min().orElse(Double.NaN), compare, runs);
    }
    System.out.printf(Locale.ROOT, "peak RSS (VmHWM):          %.0f MB with the forward session, %.0f MB at the end%n",
        rssBeforeTraining / 1024.0, vmHwmKb() / 1024.0);
    System.out.printf(Locale.ROOT, "peak Java heap:            %.0f MB (max %.0f MB)%n",
        peakHeapBytes() / 1048576.0, Runtime.getRuntime().maxMemory() / 1048576.0);
  }

  /** A trainer of {@code graphs} whose train step is built while system property {@code kv} (P=V) holds. */
  private static Trainer trainerWith(String kv, TrainStepGraph graphs, int threads) throws Exception {
    int eq = kv.indexOf('=');
    if (eq <= 0) throw new IllegalArgumentException("--compare takes PROPERTY=VALUE, e.g. graft.train.mergedLora=0; got '" + kv + "'");
    String key = kv.substring(0, eq);
    String old = System.getProperty(key);
    System.setProperty(key, kv.substring(eq + 1));
    try {
      return Trainer.builder(graphs).schedule(LrSchedule.constant(1e-3)).intraOpThreads(threads).build();
    } finally {
      if (old == null) System.clearProperty(key);
      else System.setProperty(key, old);
    }
  }

  private static long cpuNanos() {
    return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean()).getProcessCpuTime();
  }

  private static String range(List<Double> xs) {
    return String.format(Locale.ROOT, "[min %.1f, max %.1f]",
        xs.stream().mapToDouble(Double::doubleValue).min().orElse(0),
        xs.stream().mapToDouble(Double::doubleValue).max().orElse(0));
  }

  private static Map<String, Tensor> tokens(int batch, int seq, long seed, boolean full) {
    Random rnd = new Random(seed);
    long[] ids = new long[batch * seq], mask = new long[batch * seq];
    for (int b = 0; b < batch; b++) {
      int len = full ? seq : seq / 2 + rnd.nextInt(seq / 2 + 1);
      for (int s = 0; s < seq; s++) {
        ids[b * seq + s] = s == 0 ? 101 : s == len - 1 ? 102 : s < len ? 1000 + rnd.nextInt(28000) : 0;
        mask[b * seq + s] = s < len ? 1 : 0;
      }
    }
    long[] dims = {batch, seq};
    return Map.of(
        "input_ids", DenseTensor.ofLongs("input_ids", dims, ids),
        "attention_mask", DenseTensor.ofLongs("attention_mask", dims, mask),
        "token_type_ids", DenseTensor.ofLongs("token_type_ids", dims, new long[batch * seq]));
  }

  private static OnnxTensor toOrt(OrtEnvironment env, Tensor t) throws Exception {
    long[] v = t.toLongArray();
    ByteBuffer b = ByteBuffer.allocateDirect(v.length * 8).order(ByteOrder.nativeOrder());
    b.asLongBuffer().put(v);
    return OnnxTensor.createTensor(env, b.asLongBuffer(), t.dims());
  }

  private static double median(List<Double> xs) {
    double[] a = xs.stream().mapToDouble(Double::doubleValue).sorted().toArray();
    return a.length % 2 == 1 ? a[a.length / 2] : (a[a.length / 2 - 1] + a[a.length / 2]) / 2;
  }

  /** The resident-set high-water mark in kB, from /proc/self/status (Linux); -1 elsewhere. */
  private static long vmHwmKb() {
    try {
      for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
        if (line.startsWith("VmHWM:")) return Long.parseLong(line.replaceAll("[^0-9]", ""));
      }
    } catch (IOException | NumberFormatException e) {
      return -1;
    }
    return -1;
  }

  private static long peakHeapBytes() {
    long sum = 0;
    for (MemoryPoolMXBean p : ManagementFactory.getMemoryPoolMXBeans()) {
      if (p.getType() == MemoryType.HEAP) sum += p.getPeakUsage().getUsed();
    }
    return sum;
  }

  private static Path fromClasspath(String resource) throws IOException {
    try (InputStream in = TrainStepBenchmark.class.getClassLoader().getResourceAsStream(resource)) {
      if (in == null) {
        throw new IllegalArgumentException(
            "No --model given and no resource '" + resource + "' on the classpath. Pass --model"
                + " PATH, or run with the langchain4j all-minilm-l6-v2 embeddings jar on the classpath.");
      }
      Path tmp = Files.createTempFile("graft-bench-", ".onnx");
      tmp.toFile().deleteOnExit();
      Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
      return tmp;
    }
  }

  private static Map<String, String> parse(String[] args) {
    Map<String, String> m = new HashMap<>();
    for (int i = 0; i < args.length; i++) {
      if (args[i].equals("--full")) {
        m.put("full", "true");
        continue;
      }
      if (!args[i].startsWith("--") || i + 1 >= args.length) {
        throw new IllegalArgumentException(
            "Usage: TrainStepBenchmark [--model PATH] [--recipe FILE|layernorm] [--batch N] [--seq N] [--threads N] [--warmup N] [--runs N] [--full] [--compare PROPERTY=VALUE];"
                + " got " + Arrays.toString(args));
      }
      m.put(args[i].substring(2), args[++i]);
    }
    return m;
  }
}
