package dev.graft.export.bench;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.graft.export.MergedExport;
import dev.graft.fixtures.PretrainedModels;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.PassManager;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.peft.ClassificationHeadPass;
import dev.graft.rewrite.peft.LayerNormAffinePass;
import dev.graft.rewrite.peft.LoraPass;
import java.nio.LongBuffer;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Median inference latency of a merged export against the base model with the same head, on
 * all-MiniLM-L6-v2 with LoRA (query, value) + LayerNorm-affine + a mean-pooling head, ORT CPU
 * with 2 intra-op threads, batch 1 and 32, sequence {@value #SEQUENCE}. Runs alternate between
 * the two sessions so that drift in machine load hits both alike. The unmerged tuned graph is
 * timed too, to show what folding saves.
 *
 * <pre>
 *   java -cp ... dev.graft.export.bench.MergedLatencyBenchmark [iterations]
 * </pre>
 */
public final class MergedLatencyBenchmark {
  static final int SEQUENCE = 128;

  public static void main(String[] args) throws Exception {
    int iterations = args.length > 0 ? Integer.parseInt(args[0]) : 40;
    Model base = ModelIO.load(PretrainedModels.miniLm());
    Model baseWithHead = ModelIO.load(PretrainedModels.miniLm());
    ClassificationHeadPass.Config head = ClassificationHeadPass.Config.of(2, ClassificationHeadPass.Pooling.MEAN);
    new PassManager(List.of(new ClassificationHeadPass(head))).run(baseWithHead);
    Model tuned = ModelIO.load(PretrainedModels.miniLm());
    new PassManager(
            List.of(
                new LoraPass(Targets.glob("layer.*.attention.{query,value}"), LoraPass.Config.defaults()),
                new LayerNormAffinePass(Targets.all()),
                new ClassificationHeadPass(head)))
        .run(tuned);
    randomise(tuned);
    Model merged = MergedExport.folded(tuned);

    OrtEnvironment env = OrtEnvironment.getEnvironment();
    System.out.printf("ONNX Runtime %s, CPU, 2 intra-op threads, sequence %d, %d timed runs each%n",
        env.getVersion(), SEQUENCE, iterations);
    try (OrtSession.SessionOptions o = new OrtSession.SessionOptions()) {
      o.setIntraOpNumThreads(2);
      o.setInterOpNumThreads(1);
      o.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
      try (OrtSession sBase = env.createSession(ModelIO.toBytes(baseWithHead), o);
          OrtSession sMerged = env.createSession(ModelIO.toBytes(merged), o);
          OrtSession sTuned = env.createSession(ModelIO.toBytes(tuned), o)) {
        for (int batch : new int[] {1, 32}) {
          Map<String, OnnxTensor> feeds = feeds(env, batch);
          int n = batch == 1 ? iterations * 4 : iterations;
          for (int w = 0; w < 5; w++) {
            time(sBase, feeds);
            time(sMerged, feeds);
            time(sTuned, feeds);
          }
          double[] tb = new double[n];
          double[] tm = new double[n];
          double[] tt = new double[n];
          for (int i = 0; i < n; i++) {
            tb[i] = time(sBase, feeds);
            tm[i] = time(sMerged, feeds);
            tt[i] = time(sTuned, feeds);
          }
          double mb = median(tb);
          double mm = median(tm);
          double mt = median(tt);
          System.out.printf(
              "batch %2d: base+head %.2f ms, merged %.2f ms (%+.1f%%), unmerged tuned %.2f ms (%+.1f%%)%n",
              batch, mb, mm, 100 * (mm - mb) / mb, mt, 100 * (mt - mb) / mb);
          feeds.values().forEach(OnnxTensor::close);
        }
      }
    }
  }

  private static double time(OrtSession s, Map<String, OnnxTensor> feeds) throws Exception {
    long t0 = System.nanoTime();
    try (OrtSession.Result r = s.run(feeds)) {
      return (System.nanoTime() - t0) / 1e6;
    }
  }

  private static double median(double[] v) {
    double[] c = v.clone();
    Arrays.sort(c);
    return c.length % 2 == 1 ? c[c.length / 2] : (c[c.length / 2 - 1] + c[c.length / 2]) / 2;
  }

  private static Map<String, OnnxTensor> feeds(OrtEnvironment env, int batch) throws Exception {
    SplittableRandom r = new SplittableRandom(batch);
    long[] ids = new long[batch * SEQUENCE];
    long[] mask = new long[ids.length];
    for (int i = 0; i < ids.length; i++) {
      ids[i] = 1000 + r.nextInt(20000);
      mask[i] = 1;
    }
    long[] shape = {batch, SEQUENCE};
    return Map.of(
        "input_ids", OnnxTensor.createTensor(env, LongBuffer.wrap(ids), shape),
        "attention_mask", OnnxTensor.createTensor(env, LongBuffer.wrap(mask), shape),
        "token_type_ids", OnnxTensor.createTensor(env, LongBuffer.wrap(new long[ids.length]), shape));
  }

  /** Non-zero B and deltas, as after training. */
  private static void randomise(Model m) {
    SplittableRandom r = new SplittableRandom(7);
    Graph g = m.graph();
    for (TrainableRegistry.Entry e : TrainableRegistry.read(m)) {
      if (e.role().equals("A")) continue;
      Value v = g.initializer(e.initializer()).orElseThrow();
      Tensor t = v.initializer().orElseThrow();
      float[] d = new float[Math.toIntExact(t.numElements())];
      for (int i = 0; i < d.length; i++) d[i] = (float) (r.nextGaussian() * 0.05);
      g.setInitializer(v, DenseTensor.ofFloats(v.name(), t.dims(), d));
    }
  }
}
