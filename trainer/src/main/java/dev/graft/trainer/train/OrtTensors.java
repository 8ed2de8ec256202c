package dev.graft.trainer.train;

import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.TensorInfo;
import dev.graft.ir.DataType;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** Copies between IR tensors (little-endian raw data) and ORT tensors (direct native buffers). */
final class OrtTensors {
  private OrtTensors() {}

  static OnnxTensor toOrt(OrtEnvironment env, Tensor t) throws OrtException {
    ByteBuffer src = t.rawData().duplicate().order(ByteOrder.LITTLE_ENDIAN);
    ByteBuffer direct = ByteBuffer.allocateDirect(src.remaining()).order(ByteOrder.nativeOrder());
    direct.put(src).rewind();
    return OnnxTensor.createTensor(env, direct, t.dims(), javaType(t.dataType(), t.name()));
  }

  /**
   * An ORT tensor that reads {@code t}'s data where it lies when that is off the Java heap (a
   * direct buffer: the frozen weights {@link TrainStepGraph} moves there), otherwise a copy
   * ({@link #toOrt}). The data must not change while the tensor is in use; ORT only reads it.
   */
  static OnnxTensor view(OrtEnvironment env, Tensor t) throws OrtException {
    ByteBuffer data = t.rawData();
    if (!data.isDirect() || ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN) return toOrt(env, t);
    return OnnxTensor.createTensor(env, data, t.dims(), javaType(t.dataType(), t.name()));
  }

  /** A zero-filled FLOAT tensor of {@code dims}. */
  static OnnxTensor zeros(OrtEnvironment env, long[] dims) throws OrtException {
    long n = 1;
    for (long d : dims) n *= d;
    ByteBuffer direct = ByteBuffer.allocateDirect(Math.toIntExact(n * 4)).order(ByteOrder.nativeOrder());
    return OnnxTensor.createTensor(env, direct, dims, OnnxJavaType.FLOAT);
  }

  static Tensor toTensor(String name, OnnxTensor t) {
    TensorInfo info = t.getInfo();
    DataType dt = dataType(info.type, name);
    ByteBuffer copy = t.getByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
    if (ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN) {
      throw new IllegalStateException("Graft's ORT bridge assumes a little-endian machine");
    }
    return DenseTensor.ofRaw(name, dt, info.getShape(), copy);
  }

  static float[] floats(OnnxTensor t) {
    var fb = t.getFloatBuffer();
    float[] out = new float[fb.remaining()];
    fb.get(out);
    return out;
  }

  /** The value of a rank-0 (or one-element) float tensor. */
  static double scalar(OnnxTensor t) {
    return t.getFloatBuffer().get(0);
  }

  private static DataType dataType(OnnxJavaType t, String name) {
    return switch (t) {
      case FLOAT -> DataType.FLOAT;
      case DOUBLE -> DataType.DOUBLE;
      case INT64 -> DataType.INT64;
      case INT32 -> DataType.INT32;
      case INT16 -> DataType.INT16;
      case INT8 -> DataType.INT8;
      case UINT8 -> DataType.UINT8;
      case BOOL -> DataType.BOOL;
      case FLOAT16 -> DataType.FLOAT16;
      case BFLOAT16 -> DataType.BFLOAT16;
      default -> throw new IllegalArgumentException(
          "ONNX Runtime returned '" + name + "' as " + t + ", which the trainer cannot read back");
    };
  }

  private static OnnxJavaType javaType(DataType dt, String name) {
    return switch (dt) {
      case FLOAT -> OnnxJavaType.FLOAT;
      case DOUBLE -> OnnxJavaType.DOUBLE;
      case INT64 -> OnnxJavaType.INT64;
      case INT32 -> OnnxJavaType.INT32;
      case INT16 -> OnnxJavaType.INT16;
      case INT8 -> OnnxJavaType.INT8;
      case UINT8 -> OnnxJavaType.UINT8;
      case BOOL -> OnnxJavaType.BOOL;
      case FLOAT16 -> OnnxJavaType.FLOAT16;
      case BFLOAT16 -> OnnxJavaType.BFLOAT16;
      default -> throw new IllegalArgumentException(
          "Tensor '" + name + "' is " + dt + ", which the trainer cannot feed to ONNX Runtime;"
              + " convert it to FLOAT, INT64 or another numeric type.");
    };
  }
}
