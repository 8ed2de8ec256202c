package dev.graft.ir.convert;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.DoubleBuffer;
import java.nio.FloatBuffer;
import java.nio.IntBuffer;
import java.nio.LongBuffer;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

/** Runs model bytes in ONNX Runtime and flattens tensor outputs to double arrays for comparison. */
final class OrtRunner {
  static final OrtEnvironment ENV = OrtEnvironment.getEnvironment();

  /** A tensor output: dims and values widened to double. */
  record Out(long[] dims, double[] values) {
    @Override
    public String toString() {
      return Arrays.toString(dims) + " " + Arrays.toString(Arrays.copyOf(values, Math.min(8, values.length)));
    }
  }

  private OrtRunner() {}

  static OrtSession session(byte[] model) throws OrtException {
    OrtSession.SessionOptions o = new OrtSession.SessionOptions();
    o.setIntraOpNumThreads(1);
    o.setSessionLogLevel(ai.onnxruntime.OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR);
    return ENV.createSession(model, o);
  }

  /** Random inputs for every graph input of {@code model}; dynamic dims become 2. */
  static Map<String, OnnxTensor> randomInputs(byte[] model, long seed) throws OrtException {
    Random r = new Random(seed);
    Map<String, OnnxTensor> in = new LinkedHashMap<>();
    try (OrtSession s = session(model)) {
      for (Map.Entry<String, NodeInfo> e : s.getInputInfo().entrySet()) {
        TensorInfo t = (TensorInfo) e.getValue().getInfo();
        long[] dims = t.getShape().clone();
        for (int i = 0; i < dims.length; i++) if (dims[i] < 0) dims[i] = 2;
        int n = (int) Arrays.stream(dims).reduce(1L, Math::multiplyExact);
        OnnxTensor v =
            switch (t.type) {
              case FLOAT -> {
                float[] f = new float[n];
                for (int i = 0; i < n; i++) f[i] = (float) r.nextGaussian();
                yield OnnxTensor.createTensor(ENV, FloatBuffer.wrap(f), dims);
              }
              case DOUBLE -> {
                double[] f = new double[n];
                for (int i = 0; i < n; i++) f[i] = r.nextGaussian();
                yield OnnxTensor.createTensor(ENV, DoubleBuffer.wrap(f), dims);
              }
              case INT64 -> {
                long[] f = new long[n];
                for (int i = 0; i < n; i++) f[i] = r.nextInt(2);
                yield OnnxTensor.createTensor(ENV, LongBuffer.wrap(f), dims);
              }
              case BOOL -> {
                ByteBuffer b = ByteBuffer.allocateDirect(n);
                for (int i = 0; i < n; i++) b.put((byte) (r.nextBoolean() ? 1 : 0));
                b.flip();
                yield OnnxTensor.createTensor(ENV, b, dims, ai.onnxruntime.OnnxJavaType.BOOL);
              }
              default -> throw new IllegalArgumentException("no random input for " + t.type);
            };
        in.put(e.getKey(), v);
      }
    }
    return in;
  }

  /** Runs and returns every tensor output by name. */
  static Map<String, Out> run(byte[] model, Map<String, OnnxTensor> inputs) throws OrtException {
    Map<String, Out> out = new LinkedHashMap<>();
    try (OrtSession s = session(model);
        OrtSession.Result r = s.run(inputs)) {
      for (Map.Entry<String, OnnxValue> e : r) {
        if (e.getValue() instanceof OnnxTensor t) out.put(e.getKey(), toOut(t));
      }
    }
    return out;
  }

  static Out toOut(OnnxTensor t) {
    long[] dims = t.getInfo().getShape();
    int n = (int) t.getInfo().getNumElements();
    double[] d = new double[n];
    switch (t.getInfo().type) {
      case FLOAT -> {
        FloatBuffer b = t.getFloatBuffer();
        for (int i = 0; i < n; i++) d[i] = b.get(i);
      }
      case DOUBLE -> {
        DoubleBuffer b = t.getDoubleBuffer();
        for (int i = 0; i < n; i++) d[i] = b.get(i);
      }
      case INT64 -> {
        LongBuffer b = t.getLongBuffer();
        for (int i = 0; i < n; i++) d[i] = b.get(i);
      }
      case INT32 -> {
        IntBuffer b = t.getIntBuffer();
        for (int i = 0; i < n; i++) d[i] = b.get(i);
      }
      case BOOL, INT8, UINT8 -> {
        ByteBuffer b = t.getByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < n; i++) d[i] = b.get(i);
      }
      case INT16 -> {
        ByteBuffer b = t.getByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < n; i++) d[i] = b.getShort(i * 2);
      }
      case FLOAT16, BFLOAT16 -> {
        FloatBuffer b = t.getFloatBuffer(); // ORT widens half types to float
        for (int i = 0; i < n; i++) d[i] = b.get(i);
      }
      default -> throw new IllegalArgumentException("cannot compare outputs of type " + t.getInfo().type);
    }
    return new Out(dims, d);
  }

  /** The largest |a - b| over all outputs, or +inf when names, shapes or NaN positions differ. */
  static double maxDiff(Map<String, Out> a, Map<String, Out> b) {
    if (!a.keySet().equals(b.keySet())) return Double.POSITIVE_INFINITY;
    double max = 0;
    for (String k : a.keySet()) {
      Out x = a.get(k);
      Out y = b.get(k);
      if (!Arrays.equals(x.dims(), y.dims())) return Double.POSITIVE_INFINITY;
      for (int i = 0; i < x.values().length; i++) {
        double p = x.values()[i];
        double q = y.values()[i];
        if (Double.isNaN(p) || Double.isNaN(q)) {
          if (Double.isNaN(p) != Double.isNaN(q)) return Double.POSITIVE_INFINITY;
          continue;
        }
        if (p == q) continue;
        max = Math.max(max, Math.abs(p - q));
      }
    }
    return max;
  }

  static void close(Map<String, OnnxTensor> in) {
    in.values().forEach(OnnxTensor::close);
  }
}
