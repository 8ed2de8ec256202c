package dev.graft.ir.tensor;

import dev.graft.ir.DataType;
import dev.graft.ir.Shape;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * A constant tensor: an initializer, a Constant node's value, or a tensor attribute.
 *
 * <p>Tensors are immutable. {@link DenseTensor} holds its data in memory in the form the model
 * stored it (raw bytes or one of the typed lists), so that save writes back exactly what load
 * read. {@link ExternalTensor} points into a data file next to the model and maps it only when
 * {@link #rawData()} is first called: reading a tensor's shape or type does no I/O.
 */
public sealed interface Tensor permits DenseTensor, ExternalTensor {

  /** The name; null when the proto had none (attribute tensors often have none). */
  String name();

  DataType dataType();

  /** Dims as stored. */
  long[] dims();

  /** The doc string, or null. */
  String docString();

  /** Unmodelled proto fields (segment, metadata, unknown fields), opaque to everything but io. */
  byte[] extras();

  default Shape shape() {
    return Shape.of(dims());
  }

  default long numElements() {
    return Arrays.stream(dims()).reduce(1L, Math::multiplyExact);
  }

  /** Size of the data in bytes, without reading it (0 for strings, which have no fixed width). */
  default long byteSize() {
    return dataType().byteCount(numElements());
  }

  /**
   * The data as little-endian raw bytes, the layout of TensorProto.raw_data. A read-only view;
   * for an external tensor this maps the data file on first use. Not for string tensors.
   */
  ByteBuffer rawData();

  /** A copy renamed; data is shared, not copied. */
  Tensor withName(String name);

  default float[] toFloatArray() {
    if (dataType() != DataType.FLOAT) {
      throw new IllegalStateException(
          "Tensor '" + name() + "' is " + dataType() + ", not FLOAT; convert it first");
    }
    float[] out = new float[Math.toIntExact(numElements())];
    rawData().duplicate().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(out);
    return out;
  }

  default double[] toDoubleArray() {
    ByteBuffer b = rawData().duplicate().order(ByteOrder.LITTLE_ENDIAN);
    int n = Math.toIntExact(numElements());
    double[] out = new double[n];
    switch (dataType()) {
      case FLOAT -> {
        for (int i = 0; i < n; i++) out[i] = b.getFloat(i * 4);
      }
      case DOUBLE -> b.asDoubleBuffer().get(out);
      default -> {
        long[] l = toLongArray();
        for (int i = 0; i < n; i++) out[i] = l[i];
      }
    }
    return out;
  }

  /** Integer data widened to long; for INT64, INT32, INT16, INT8, UINT8, UINT16, UINT32, BOOL. */
  default long[] toLongArray() {
    ByteBuffer b = rawData().duplicate().order(ByteOrder.LITTLE_ENDIAN);
    int n = Math.toIntExact(numElements());
    long[] out = new long[n];
    switch (dataType()) {
      case INT64, UINT64 -> b.asLongBuffer().get(out);
      case INT32 -> {
        for (int i = 0; i < n; i++) out[i] = b.getInt(i * 4);
      }
      case UINT32 -> {
        for (int i = 0; i < n; i++) out[i] = Integer.toUnsignedLong(b.getInt(i * 4));
      }
      case INT16 -> {
        for (int i = 0; i < n; i++) out[i] = b.getShort(i * 2);
      }
      case UINT16 -> {
        for (int i = 0; i < n; i++) out[i] = Short.toUnsignedInt(b.getShort(i * 2));
      }
      case INT8 -> {
        for (int i = 0; i < n; i++) out[i] = b.get(i);
      }
      case UINT8, BOOL -> {
        for (int i = 0; i < n; i++) out[i] = Byte.toUnsignedInt(b.get(i));
      }
      default ->
          throw new IllegalStateException(
              "Tensor '" + name() + "' of type " + dataType() + " has no integer view");
    }
    return out;
  }
}
