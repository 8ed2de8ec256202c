package dev.graft.ir.io;

import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.TensorInfo;
import dev.graft.ir.DataType;
import dev.graft.ir.tensor.Tensor;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** Test helpers between IR tensors and ORT values. */
final class OrtValues {
  private OrtValues() {}

  /** An ORT tensor holding the IR tensor's data; null for types this helper does not map. */
  static OnnxTensor toOrt(OrtEnvironment env, Tensor t) throws OrtException {
    OnnxJavaType jt =
        switch (t.dataType()) {
          case FLOAT -> OnnxJavaType.FLOAT;
          case DOUBLE -> OnnxJavaType.DOUBLE;
          case INT8 -> OnnxJavaType.INT8;
          case UINT8 -> OnnxJavaType.UINT8;
          case INT16 -> OnnxJavaType.INT16;
          case INT32 -> OnnxJavaType.INT32;
          case INT64 -> OnnxJavaType.INT64;
          case BOOL -> OnnxJavaType.BOOL;
          case FLOAT16 -> OnnxJavaType.FLOAT16;
          case BFLOAT16 -> OnnxJavaType.BFLOAT16;
          default -> null;
        };
    if (jt == null) return null;
    ByteBuffer src = t.rawData();
    ByteBuffer direct = ByteBuffer.allocateDirect(src.remaining()).order(ByteOrder.nativeOrder());
    if (ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN) {
      throw new IllegalStateException("big-endian hosts are not supported by this test helper");
    }
    direct.put(src.duplicate());
    direct.flip();
    return OnnxTensor.createTensor(env, direct, t.dims(), jt);
  }

  /** The ORT value's data as doubles, or null when it is not a numeric tensor. */
  static double[] toDoubles(OnnxValue v) throws OrtException {
    if (!(v instanceof OnnxTensor t)) return null;
    TensorInfo info = t.getInfo();
    ByteBuffer b = t.getByteBuffer();
    if (b == null) return null;
    b.order(ByteOrder.nativeOrder());
    int n = Math.toIntExact(info.getNumElements());
    double[] out = new double[n];
    switch (info.type) {
      case FLOAT -> {
        for (int i = 0; i < n; i++) out[i] = b.getFloat(i * 4);
      }
      case DOUBLE -> {
        for (int i = 0; i < n; i++) out[i] = b.getDouble(i * 8);
      }
      case INT64 -> {
        for (int i = 0; i < n; i++) out[i] = b.getLong(i * 8);
      }
      case INT32 -> {
        for (int i = 0; i < n; i++) out[i] = b.getInt(i * 4);
      }
      case INT16 -> {
        for (int i = 0; i < n; i++) out[i] = b.getShort(i * 2);
      }
      case INT8 -> {
        for (int i = 0; i < n; i++) out[i] = b.get(i);
      }
      case UINT8, BOOL -> {
        for (int i = 0; i < n; i++) out[i] = Byte.toUnsignedInt(b.get(i));
      }
      default -> {
        return null;
      }
    }
    return out;
  }

  /** The reference tensor's data as doubles, or null for types not compared. */
  static double[] toDoubles(Tensor t) {
    if (t.dataType() == DataType.FLOAT16 || t.dataType() == DataType.BFLOAT16) return null;
    try {
      return t.toDoubleArray();
    } catch (RuntimeException e) {
      // Not numeric, or a garbage parse of a sequence or optional reference file.
      return null;
    }
  }
}
