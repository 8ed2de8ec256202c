package dev.graft.ir.infer;

import static org.assertj.core.api.Assertions.assertThat;

import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.graft.ir.DataType;
import dev.graft.ir.Model;
import dev.graft.ir.Shape;
import dev.graft.ir.Value;
import dev.graft.ir.io.ModelIO;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * The oracle for shape rules: runs a model in ONNX Runtime on seeded inputs and checks that every
 * graph output's inferred type is static and equals what ORT produced.
 */
final class OrtShapes {
  static final OrtEnvironment ENV = OrtEnvironment.getEnvironment();

  private OrtShapes() {}

  /** What ORT produced for one output. */
  record Produced(long[] shape, OnnxJavaType type) {}

  /** Runs {@code m} on seeded inputs shaped like its (static) graph inputs. */
  static Map<String, Produced> run(Model m) throws OrtException {
    byte[] bytes = ModelIO.toBytes(m);
    Map<String, OnnxTensor> feeds = new LinkedHashMap<>();
    SplittableRandom random = new SplittableRandom(7);
    try (OrtSession.SessionOptions o = new OrtSession.SessionOptions();
        OrtSession s = ENV.createSession(bytes, o)) {
      for (Value in : m.graph().inputs()) {
        if (in.isInitializer()) continue;
        feeds.put(in.name(), sample(in, random));
      }
      Map<String, Produced> out = new LinkedHashMap<>();
      try (OrtSession.Result r = s.run(feeds)) {
        for (Map.Entry<String, OnnxValue> e : r) {
          OnnxTensor t = (OnnxTensor) e.getValue();
          out.put(e.getKey(), new Produced(t.getInfo().getShape(), t.getInfo().type));
        }
      }
      return out;
    } finally {
      for (OnnxTensor t : feeds.values()) t.close();
    }
  }

  /** Floats in [0.5, 1.5) (safe for Log and Sqrt), int64 0 or 1, bools alternating. */
  static OnnxTensor sample(Value in, SplittableRandom random) throws OrtException {
    long[] dims = in.shape().orElseThrow().staticSizes();
    int n = Math.toIntExact(Arrays.stream(dims).reduce(1L, Math::multiplyExact));
    DataType t = in.dataType().orElseThrow();
    ByteBuffer b;
    OnnxJavaType jt;
    switch (t) {
      case FLOAT -> {
        b = ByteBuffer.allocateDirect(n * 4).order(ByteOrder.nativeOrder());
        for (int i = 0; i < n; i++) b.putFloat(0.5f + (float) random.nextDouble());
        jt = OnnxJavaType.FLOAT;
      }
      case INT64 -> {
        b = ByteBuffer.allocateDirect(n * 8).order(ByteOrder.nativeOrder());
        for (int i = 0; i < n; i++) b.putLong(random.nextInt(2));
        jt = OnnxJavaType.INT64;
      }
      case BOOL -> {
        b = ByteBuffer.allocateDirect(n).order(ByteOrder.nativeOrder());
        for (int i = 0; i < n; i++) b.put((byte) (i % 2));
        jt = OnnxJavaType.BOOL;
      }
      default -> throw new IllegalArgumentException("no sample input for " + t);
    }
    b.flip();
    return OnnxTensor.createTensor(ENV, b, dims, jt);
  }

  /**
   * Infers {@code m}, runs it in ORT, and asserts each graph output is statically typed and
   * matches ORT's shape and element type. Returns how many outputs were compared.
   */
  static int assertInferenceMatchesOrt(Model m) throws OrtException {
    ShapeInference.infer(m);
    Map<String, Produced> produced = run(m);
    int checked = 0;
    for (Value out : m.graph().outputs()) {
      Produced p = produced.get(out.name());
      assertThat(out.shape()).as("inferred shape of %s", out.name()).isPresent();
      Shape s = out.shape().get();
      assertThat(s.isStatic()).as("inferred shape %s of %s is static", s, out.name()).isTrue();
      assertThat(s.staticSizes()).as("shape of %s (ORT gave %s)", out.name(), Arrays.toString(p.shape())).containsExactly(p.shape());
      assertThat(javaType(out.dataType().orElseThrow())).as("element type of %s", out.name()).isEqualTo(p.type());
      checked++;
    }
    return checked;
  }

  static OnnxJavaType javaType(DataType t) {
    return switch (t) {
      case FLOAT -> OnnxJavaType.FLOAT;
      case DOUBLE -> OnnxJavaType.DOUBLE;
      case INT64 -> OnnxJavaType.INT64;
      case INT32 -> OnnxJavaType.INT32;
      case INT8 -> OnnxJavaType.INT8;
      case UINT8 -> OnnxJavaType.UINT8;
      case BOOL -> OnnxJavaType.BOOL;
      case FLOAT16 -> OnnxJavaType.FLOAT16;
      default -> OnnxJavaType.UNKNOWN;
    };
  }
}
