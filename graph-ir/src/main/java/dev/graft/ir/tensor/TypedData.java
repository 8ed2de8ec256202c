package dev.graft.ir.tensor;

import dev.graft.ir.DataType;
import dev.graft.ir.tensor.DenseTensor.Storage;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** Converts TensorProto's typed data lists to raw little-endian bytes, per the ONNX IR spec. */
final class TypedData {
  private TypedData() {}

  static ByteBuffer toRaw(DenseTensor t) {
    Storage s = t.storage();
    DataType type = t.dataType();
    if (s instanceof Storage.Raw r) {
      return r.bytes().duplicate();
    }
    if (s instanceof Storage.Empty) {
      return ByteBuffer.allocate(0);
    }
    long bytes = t.byteSize();
    ByteBuffer out = ByteBuffer.allocate(Math.toIntExact(bytes)).order(ByteOrder.LITTLE_ENDIAN);
    if (s instanceof Storage.Floats f) {
      out.asFloatBuffer().put(f.values());
    } else if (s instanceof Storage.Doubles d) {
      out.asDoubleBuffer().put(d.values());
    } else if (s instanceof Storage.Int64s l) {
      out.asLongBuffer().put(l.values());
    } else if (s instanceof Storage.Uint64s u) {
      for (long v : u.values()) {
        if (type == DataType.UINT32) out.putInt((int) v);
        else out.putLong(v);
      }
    } else if (s instanceof Storage.Int32s i) {
      int[] v = i.values();
      switch (type.bits()) {
        case 32 -> out.asIntBuffer().put(v);
        case 16 -> {
          for (int x : v) out.putShort((short) x);
        }
        // Sub-byte types: int32_data holds one packed byte per entry.
        case 8, 4, 2 -> {
          for (int x : v) out.put((byte) x);
        }
        default ->
            throw new IllegalStateException(
                "Tensor '" + t.name() + "': int32_data cannot hold " + type);
      }
    } else {
      throw new IllegalStateException(
          "Tensor '" + t.name() + "' is a string tensor; it has no raw byte layout");
    }
    out.position(0);
    out.limit(Math.toIntExact(bytes));
    return out;
  }
}
