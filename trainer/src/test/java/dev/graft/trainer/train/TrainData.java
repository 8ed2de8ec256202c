package dev.graft.trainer.train;

import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import java.util.List;
import java.util.Map;
import java.util.Random;

/** Seeded data and small models for the train tests. */
final class TrainData {
  private TrainData() {}

  /** Points of two interleaved spirals: xs[i] = (x, y), labels[i] in {0, 1}. */
  record Points(float[] xs, long[] labels) {
    int size() {
      return labels.length;
    }

    /** Rows [from, to) as a batch for a model with input "x" and "labels". */
    Map<String, Tensor> batch(int from, int to) {
      float[] x = new float[(to - from) * 2];
      System.arraycopy(xs, from * 2, x, 0, x.length);
      long[] y = new long[to - from];
      System.arraycopy(labels, from, y, 0, y.length);
      return Map.of(
          "x", DenseTensor.ofFloats("x", new long[] {to - from, 2}, x),
          "labels", DenseTensor.ofLongs("labels", new long[] {to - from}, y));
    }

    Map<String, Tensor> all() {
      return batch(0, size());
    }
  }

  /**
   * {@code perClass} points per spiral, 1.5 turns each, the second the first rotated by pi, with
   * Gaussian noise; shuffled. Coordinates lie roughly in [-1, 1].
   */
  static Points spirals(int perClass, double noise, long seed) {
    Random rnd = new Random(seed);
    int n = 2 * perClass;
    float[] xs = new float[n * 2];
    long[] ys = new long[n];
    for (int i = 0; i < n; i++) {
      int c = i % 2;
      double t = 0.3 + rnd.nextDouble() * 3 * Math.PI;
      double r = t / (3 * Math.PI + 0.3);
      double a = t + c * Math.PI;
      xs[2 * i] = (float) (r * Math.cos(a) + noise * rnd.nextGaussian());
      xs[2 * i + 1] = (float) (r * Math.sin(a) + noise * rnd.nextGaussian());
      ys[i] = c;
    }
    for (int i = n - 1; i > 0; i--) {
      int j = rnd.nextInt(i + 1);
      float x0 = xs[2 * i], x1 = xs[2 * i + 1];
      xs[2 * i] = xs[2 * j];
      xs[2 * i + 1] = xs[2 * j + 1];
      xs[2 * j] = x0;
      xs[2 * j + 1] = x1;
      long y = ys[i];
      ys[i] = ys[j];
      ys[j] = y;
    }
    return new Points(xs, ys);
  }

  /**
   * {@code x[batch, 2] -> Gemm(fc1: random features, scale 4) -> Sin -> MatMul+Add (fc2) -> Relu
   * -> MatMul+Add (fc3) -> logits[batch, 2]}, opset 17. Random sinusoidal features make the
   * spirals separable for a small net; fc1 is meant to stay frozen.
   */
  static Model spiralNet(int features, int hidden, long seed) {
    Random rnd = new Random(seed);
    GraphBuilder b = GraphBuilder.create("spiral_net");
    Value x = b.input("x", DataType.FLOAT, "batch", 2);
    Value w1 = b.initializer("fc1.weight", gaussian(rnd, 4.0, features, 2));
    Value b1 = b.initializer("fc1.bias", uniform(rnd, Math.PI, features));
    Value w2 = b.initializer("fc2.weight", gaussian(rnd, 1 / Math.sqrt(features), features, hidden));
    Value b2 = b.initializer("fc2.bias", DenseTensor.ofFloats("fc2.bias", new long[] {hidden}, new float[hidden]));
    Value w3 = b.initializer("fc3.weight", gaussian(rnd, 1 / Math.sqrt(hidden), hidden, 2));
    Value b3 = b.initializer("fc3.bias", DenseTensor.ofFloats("fc3.bias", new long[] {2}, new float[2]));
    b.prefix("/fc1");
    Value h1 = b.op("Sin", b.op("Gemm", List.of(x, w1, b1), Attr.of("transB", 1L)));
    b.prefix("/fc2");
    Value h2 = b.op("Relu", b.op("Add", b.op("MatMul", h1, w2), b2));
    b.prefix("/fc3");
    Value logits = b.op("Add", b.op("MatMul", h2, w3), b3);
    b.output("logits", logits);
    b.typed(logits, DataType.FLOAT, "batch", 2L);
    return b.model(17);
  }

  static DenseTensor gaussian(Random rnd, double std, long... dims) {
    long n = 1;
    for (long d : dims) n *= d;
    float[] v = new float[(int) n];
    for (int i = 0; i < v.length; i++) v[i] = (float) (rnd.nextGaussian() * std);
    return DenseTensor.ofFloats(null, dims, v);
  }

  static DenseTensor uniform(Random rnd, double bound, long... dims) {
    long n = 1;
    for (long d : dims) n *= d;
    float[] v = new float[(int) n];
    for (int i = 0; i < v.length; i++) v[i] = (float) ((rnd.nextDouble() * 2 - 1) * bound);
    return DenseTensor.ofFloats(null, dims, v);
  }

  /** Row-wise argmax of [n, c] logits. */
  static long[] argmax(Tensor logits) {
    float[] v = logits.toFloatArray();
    int c = (int) logits.dims()[1];
    long[] out = new long[v.length / c];
    for (int i = 0; i < out.length; i++) {
      int best = 0;
      for (int k = 1; k < c; k++) if (v[i * c + k] > v[i * c + best]) best = k;
      out[i] = best;
    }
    return out;
  }

  static double accuracy(Tensor logits, long[] labels) {
    long[] p = argmax(logits);
    int ok = 0;
    for (int i = 0; i < p.length; i++) if (p[i] == labels[i]) ok++;
    return (double) ok / p.length;
  }
}
