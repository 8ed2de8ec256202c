package dev.graft.export;

import static com.google.common.base.Preconditions.checkArgument;

import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import com.google.common.collect.ImmutableMap;
import dev.graft.ir.DataType;
import dev.graft.ir.Model;
import dev.graft.ir.io.SessionFile;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Runs graphs on ONNX Runtime with IR tensors in and out. The exporter's tensor maths (folding
 * {@code W + s·A·B}, casting to fp16, evaluating reparameterisation MLPs) all goes through here:
 * ORT is the project's only executor of tensor maths.
 */
final class OrtEval {
  static final OrtEnvironment ENV = OrtEnvironment.getEnvironment();

  private OrtEval() {}

  /** Runs {@code model} once on {@code feeds}; every output, by name, in output order. */
  static ImmutableMap<String, Tensor> run(Model model, Map<String, Tensor> feeds) {
    return run(model, feeds, "a graph built for export");
  }

  /**
   * Runs a graph built to compute one value, without ORT's graph optimisations: they would only
   * move the work into session creation, where constant folding evaluates constant subgraphs
   * (a fold's {@code EyeLike(ConstantOfShape(...))} branch, say) on one thread and keeps copies.
   */
  static ImmutableMap<String, Tensor> runUnoptimized(Model model, Map<String, Tensor> feeds, String what) {
    return run(model, feeds, what, false);
  }

  /**
   * Runs {@code model} once, opened by ORT from a {@link SessionFile}: external weights are read
   * by ORT from their own file and never pass through the heap; {@code what} names it in errors.
   */
  static ImmutableMap<String, Tensor> run(Model model, Map<String, Tensor> feeds, String what) {
    return run(model, feeds, what, true);
  }

  private static ImmutableMap<String, Tensor> run(
      Model model, Map<String, Tensor> feeds, String what, boolean optimize) {
    try (OrtSession.SessionOptions o = new OrtSession.SessionOptions()) {
      o.setIntraOpNumThreads(2);
      if (!optimize) o.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.NO_OPT);
      OrtSession s;
      try (SessionFile file = SessionFile.write(model)) {
        if (file.large()) largeWeightOptions(o);
        s = ENV.createSession(file.path().toString(), o);
      }
      try (s) {
        return run(s, feeds);
      }
    } catch (OrtException e) {
      throw new IllegalStateException("ONNX Runtime failed on " + what + ": " + e.getMessage(), e);
    }
  }

  /**
   * Over {@link SessionFile#LARGE_WEIGHTS} of weights read from files, no packed or folded
   * copies of them in ORT's memory (see the trainer's {@code Trainer.largeWeightOptions}).
   */
  static void largeWeightOptions(OrtSession.SessionOptions o) throws OrtException {
    o.addConfigEntry("session.disable_prepacking", "1");
    o.addConfigEntry("optimization.disable_specified_optimizers", "ConstantFolding");
  }

  /** Bytes of the model's initializers that live in external data files. */
  static long externalBytes(Model m) {
    long n = 0;
    for (var v : m.graph().initializers()) {
      if (v.initializer().orElseThrow() instanceof dev.graft.ir.tensor.ExternalTensor e) n += e.length();
    }
    return n;
  }

  /** Runs the model file {@code file} (external data beside it is read by ORT). */
  static ImmutableMap<String, Tensor> run(java.nio.file.Path file, Map<String, Tensor> feeds, String what) {
    try (OrtSession.SessionOptions o = new OrtSession.SessionOptions()) {
      o.setIntraOpNumThreads(2);
      try (OrtSession s = ENV.createSession(file.toString(), o)) {
        return run(s, feeds);
      }
    } catch (OrtException e) {
      throw new IllegalStateException("ONNX Runtime failed on " + what + ": " + e.getMessage(), e);
    }
  }

  /** Runs the serialized model {@code bytes}; {@code what} names it in errors. */
  static ImmutableMap<String, Tensor> run(byte[] bytes, Map<String, Tensor> feeds, String what) {
    try (OrtSession.SessionOptions o = new OrtSession.SessionOptions()) {
      o.setIntraOpNumThreads(2);
      try (OrtSession s = ENV.createSession(bytes, o)) {
        return run(s, feeds);
      }
    } catch (OrtException e) {
      throw new IllegalStateException("ONNX Runtime failed on " + what + ": " + e.getMessage(), e);
    }
  }

  /** Runs an open session on {@code feeds}. */
  static ImmutableMap<String, Tensor> run(OrtSession s, Map<String, Tensor> feeds) throws OrtException {
    try (OrtSession.RunOptions ro = new OrtSession.RunOptions()) {
      return run(s, feeds, ro);
    }
  }

  /** Runs an open session on {@code feeds} with {@code options} (e.g. an active LoRA adapter). */
  static ImmutableMap<String, Tensor> run(OrtSession s, Map<String, Tensor> feeds, OrtSession.RunOptions options)
      throws OrtException {
    Map<String, OnnxTensor> in = new LinkedHashMap<>();
    try {
      for (Map.Entry<String, Tensor> e : feeds.entrySet()) in.put(e.getKey(), toOrt(e.getValue()));
      ImmutableMap.Builder<String, Tensor> out = ImmutableMap.builder();
      try (OrtSession.Result r = s.run(in, options)) {
        for (Map.Entry<String, OnnxValue> e : r) {
          checkArgument(
              e.getValue() instanceof OnnxTensor,
              "Output '%s' is not a tensor (%s); the exporter compares tensors only",
              e.getKey(),
              e.getValue().getType());
          out.put(e.getKey(), fromOrt(e.getKey(), (OnnxTensor) e.getValue()));
        }
      }
      return out.build();
    } finally {
      in.values().forEach(OnnxTensor::close);
    }
  }

  /**
   * Runs an open session whose output {@code output} ORT writes into {@code into}, a direct
   * buffer of exactly the output's size, as the tensor {@code shape} describes it (type and
   * dims); nothing of it passes through the heap. The session's other outputs (a probe's few
   * numbers, which may read {@code output} as ORT wrote it) are returned by name.
   */
  static ImmutableMap<String, Tensor> runInto(
      OrtSession s, Map<String, Tensor> feeds, String output, Tensor shape, ByteBuffer into) throws OrtException {
    checkArgument(into.isDirect(), "ORT writes output '%s' in place only into a direct buffer", output);
    checkArgument(
        into.remaining() == shape.byteSize(),
        "Output '%s' takes %s bytes; the buffer holds %s",
        output,
        shape.byteSize(),
        into.remaining());
    java.util.Set<String> others = new java.util.LinkedHashSet<>(s.getOutputNames());
    others.remove(output);
    Map<String, OnnxTensor> in = new LinkedHashMap<>();
    try (OnnxTensor target =
            OnnxTensor.createTensor(
                ENV, into.duplicate().order(ByteOrder.nativeOrder()), shape.dims(), javaType(shape.dataType(), output));
        OrtSession.RunOptions ro = new OrtSession.RunOptions()) {
      for (Map.Entry<String, Tensor> e : feeds.entrySet()) in.put(e.getKey(), toOrt(e.getValue()));
      ImmutableMap.Builder<String, Tensor> out = ImmutableMap.builder();
      try (OrtSession.Result r = s.run(in, others, Map.of(output, target), ro)) {
        for (String name : others) {
          OnnxValue v = r.get(name).orElseThrow();
          checkArgument(v instanceof OnnxTensor, "Output '%s' is not a tensor (%s)", name, v.getType());
          out.put(name, fromOrt(name, (OnnxTensor) v));
        }
      }
      return out.build();
    } finally {
      in.values().forEach(OnnxTensor::close);
    }
  }

  /**
   * An ORT tensor over {@code t}'s data: the data itself when it is already outside the heap (a
   * mapped external weight: ORT reads the mapping, nothing is copied), else a copy.
   */
  static OnnxTensor toOrt(Tensor t) throws OrtException {
    if (ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN) {
      throw new IllegalStateException("Graft's exporter assumes a little-endian machine");
    }
    ByteBuffer raw = t.rawData().duplicate().order(ByteOrder.LITTLE_ENDIAN);
    if (raw.isDirect() && raw.remaining() > 0) {
      return OnnxTensor.createTensor(ENV, raw, t.dims(), javaType(t.dataType(), t.name()));
    }
    ByteBuffer direct = ByteBuffer.allocateDirect(raw.remaining()).order(ByteOrder.nativeOrder());
    direct.put(raw).flip();
    return OnnxTensor.createTensor(ENV, direct, t.dims(), javaType(t.dataType(), t.name()));
  }

  /** An IR tensor copying the data of an ORT output. */
  static DenseTensor fromOrt(String name, OnnxTensor t) {
    // The Java enum numbers types its own way; its names are ONNX's.
    DataType type =
        DataType.valueOf(t.getInfo().onnxType.name().substring("ONNX_TENSOR_ELEMENT_DATA_TYPE_".length()));
    ByteBuffer b = t.getByteBuffer();
    checkArgument(b != null, "Output '%s' of type %s has no raw data (strings are not supported)", name, type);
    // getByteBuffer already copies into the heap; only a direct buffer (a view of ORT's memory,
    // freed with the result) is copied again.
    ByteBuffer copy = b;
    if (b.isDirect()) {
      copy = ByteBuffer.allocate(b.remaining());
      copy.put(b).flip();
    }
    return DenseTensor.ofRaw(name, type, t.getInfo().getShape(), copy.order(ByteOrder.LITTLE_ENDIAN));
  }

  private static OnnxJavaType javaType(DataType t, String name) {
    return switch (t) {
      case FLOAT -> OnnxJavaType.FLOAT;
      case DOUBLE -> OnnxJavaType.DOUBLE;
      case FLOAT16 -> OnnxJavaType.FLOAT16;
      case BFLOAT16 -> OnnxJavaType.BFLOAT16;
      case INT8 -> OnnxJavaType.INT8;
      case UINT8 -> OnnxJavaType.UINT8;
      case INT16 -> OnnxJavaType.INT16;
      case INT32 -> OnnxJavaType.INT32;
      case INT64 -> OnnxJavaType.INT64;
      case BOOL -> OnnxJavaType.BOOL;
      default -> throw new IllegalArgumentException(
          "Tensor '" + name + "' is " + t + ", which the exporter cannot hand to ONNX Runtime's Java"
              + " API; feed FLOAT, DOUBLE, FLOAT16, BFLOAT16, INT8/16/32/64, UINT8 or BOOL.");
    };
  }
}
