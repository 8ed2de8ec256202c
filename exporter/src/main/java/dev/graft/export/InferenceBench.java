package dev.graft.export;

import static com.google.common.base.Preconditions.checkArgument;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import com.google.common.collect.ImmutableList;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Inference latency of several models side by side, in one process, on the same inputs: what a
 * user needs to choose between a merged LoRA, an adapter model and a CoDA model, and what CoDA's
 * speed-up claim is measured with.
 *
 * <pre>
 *   open a session per model (same threads)  ─►  one set of inputs [batch, seq]
 *   ─►  warm-up runs of each  ─►  rounds: each model once per round, in turn  ─►  per model:
 *   median, 10th and 90th percentile, min, throughput = batch / median
 * </pre>
 *
 * Runs interleave (round-robin) so that load from other processes on a shared machine falls on
 * all models alike; ratios within one bench are what to compare, not absolute times across runs.
 * Inputs are made from each session's input names: {@code *ids*} random token ids in [1000,
 * 20000), {@code *mask*} ones, {@code token_type*} zeros, other integers zeros, floats uniform in
 * [-1, 1). Symbolic sizes are batch for the first axis and seq for the others.
 */
public final class InferenceBench {
  private InferenceBench() {}

  /** What to measure. */
  public record Config(int batch, int seq, int threads, int warmup, int runs, long seed) {
    public Config {
      checkArgument(batch >= 1, "--batch must be at least 1, got %s", batch);
      checkArgument(seq >= 1, "--seq must be at least 1, got %s", seq);
      checkArgument(threads >= 0, "--threads must be 0 (ORT chooses) or more, got %s", threads);
      checkArgument(warmup >= 0, "--warmup must be 0 or more, got %s", warmup);
      checkArgument(runs >= 1, "--runs must be at least 1, got %s", runs);
    }
  }

  /** One model's figures, in milliseconds per run. */
  public record Result(Path model, double medianMs, double p10Ms, double p90Ms, double minMs, int runs, int batch) {
    /** Sequences per second at the median. */
    public double throughput() {
      return batch * 1000.0 / medianMs;
    }
  }

  /** Benchmarks {@code models} under {@code config}; results in the order given. */
  public static ImmutableList<Result> run(List<Path> models, Config config) throws OrtException {
    checkArgument(!models.isEmpty(), "Name at least one model to benchmark");
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    List<OrtSession> sessions = new ArrayList<>();
    List<OrtSession.SessionOptions> options = new ArrayList<>();
    Map<String, OnnxTensor> pool = new HashMap<>();
    try {
      for (Path p : models) {
        OrtSession.SessionOptions o = new OrtSession.SessionOptions();
        options.add(o);
        if (config.threads() > 0) o.setIntraOpNumThreads(config.threads());
        o.setInterOpNumThreads(1);
        sessions.add(env.createSession(p.toString(), o));
      }
      SplittableRandom random = new SplittableRandom(config.seed());
      List<Map<String, OnnxTensor>> feeds = new ArrayList<>();
      for (OrtSession s : sessions) feeds.add(inputs(env, s, config, random, pool));
      for (int w = 0; w < config.warmup(); w++) {
        for (int i = 0; i < sessions.size(); i++) sessions.get(i).run(feeds.get(i)).close();
      }
      double[][] times = new double[sessions.size()][config.runs()];
      for (int r = 0; r < config.runs(); r++) {
        for (int i = 0; i < sessions.size(); i++) {
          long t0 = System.nanoTime();
          sessions.get(i).run(feeds.get(i)).close();
          times[i][r] = (System.nanoTime() - t0) / 1e6;
        }
      }
      ImmutableList.Builder<Result> out = ImmutableList.builder();
      for (int i = 0; i < sessions.size(); i++) {
        double[] t = times[i].clone();
        Arrays.sort(t);
        out.add(new Result(models.get(i), quantile(t, 0.5), quantile(t, 0.1), quantile(t, 0.9), t[0], t.length, config.batch()));
      }
      return out.build();
    } finally {
      for (OnnxTensor t : pool.values()) t.close();
      for (OrtSession s : sessions) s.close();
      for (OrtSession.SessionOptions o : options) o.close();
    }
  }

  /** The same tensor for the same input name and shape across models. */
  private static Map<String, OnnxTensor> inputs(
      OrtEnvironment env, OrtSession s, Config c, SplittableRandom random, Map<String, OnnxTensor> pool) throws OrtException {
    Map<String, OnnxTensor> feeds = new LinkedHashMap<>();
    for (Map.Entry<String, NodeInfo> e : s.getInputInfo().entrySet()) {
      String name = e.getKey();
      if (!(e.getValue().getInfo() instanceof TensorInfo info)) {
        throw new IllegalArgumentException("Input '" + name + "' is not a tensor; the bench feeds tensors only");
      }
      long[] dims = info.getShape().clone();
      for (int d = 0; d < dims.length; d++) if (dims[d] < 0) dims[d] = d == 0 ? c.batch() : c.seq();
      String key = name + Arrays.toString(dims) + info.type;
      OnnxTensor t = pool.get(key);
      if (t == null) {
        t = make(env, name, dims, info.type, random);
        pool.put(key, t);
      }
      feeds.put(name, t);
    }
    return feeds;
  }

  private static OnnxTensor make(OrtEnvironment env, String name, long[] dims, OnnxJavaType type, SplittableRandom random)
      throws OrtException {
    int n = Math.toIntExact(Arrays.stream(dims).reduce(1, Math::multiplyExact));
    String lower = name.toLowerCase(java.util.Locale.ROOT);
    if (type == OnnxJavaType.INT64) {
      long[] v = new long[n];
      if (lower.contains("ids") && !lower.contains("type")) for (int i = 0; i < n; i++) v[i] = random.nextLong(1000, 20000);
      else if (lower.contains("mask")) Arrays.fill(v, 1L);
      return OnnxTensor.createTensor(env, LongBuffer.wrap(v), dims);
    }
    if (type == OnnxJavaType.FLOAT) {
      float[] v = new float[n];
      for (int i = 0; i < n; i++) v[i] = (float) random.nextDouble(-1, 1);
      return OnnxTensor.createTensor(env, FloatBuffer.wrap(v), dims);
    }
    throw new IllegalArgumentException(
        "Input '" + name + "' is " + type + "; the bench makes int64 and float inputs only");
  }

  private static double quantile(double[] sorted, double q) {
    double pos = q * (sorted.length - 1);
    int lo = (int) Math.floor(pos);
    int hi = (int) Math.ceil(pos);
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
  }
}
