package dev.graft.ir.tensor;

import static com.google.common.base.Preconditions.checkArgument;

import dev.graft.ir.DataType;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;

/**
 * A tensor whose data lives in memory.
 *
 * <p>The data keeps the form the model stored it in ({@link Storage}): raw little-endian bytes,
 * or one of TensorProto's typed lists (float_data, int32_data, ...). {@link #rawData()} converts a
 * typed list to raw bytes on demand, so users see one layout while save writes the original one.
 */
public final class DenseTensor implements Tensor {

  /** How the data is held; mirrors TensorProto's data fields. */
  public sealed interface Storage {
    /** TensorProto.raw_data. */
    record Raw(ByteBuffer bytes) implements Storage {}

    /** float_data: FLOAT, COMPLEX64. */
    record Floats(float[] values) implements Storage {}

    /** int32_data: INT32, INT16, INT8, UINT16, UINT8, BOOL, FLOAT16, BFLOAT16, FLOAT8*, INT4. */
    record Int32s(int[] values) implements Storage {}

    /** int64_data: INT64. */
    record Int64s(long[] values) implements Storage {}

    /** double_data: DOUBLE, COMPLEX128. */
    record Doubles(double[] values) implements Storage {}

    /** uint64_data: UINT32, UINT64. */
    record Uint64s(long[] values) implements Storage {}

    /** string_data: STRING. */
    record Strings(List<byte[]> values) implements Storage {}

    /** No data field present at all (an empty tensor, or a malformed one kept as it was). */
    record Empty() implements Storage {}
  }

  private final String name;
  private final DataType dataType;
  private final long[] dims;
  private final String docString;
  private final Storage storage;
  private final byte[] extras;
  private volatile ByteBuffer raw;

  public DenseTensor(
      String name,
      DataType dataType,
      long[] dims,
      Storage storage,
      String docString,
      byte[] extras) {
    this.name = name;
    this.dataType = dataType;
    this.dims = dims.clone();
    this.storage = storage;
    this.docString = docString;
    this.extras = extras == null ? new byte[0] : extras;
  }

  /** A raw tensor from little-endian bytes; the buffer is not copied, so do not change it. */
  public static DenseTensor ofRaw(String name, DataType type, long[] dims, ByteBuffer data) {
    DenseTensor t =
        new DenseTensor(name, type, dims, new Storage.Raw(data.asReadOnlyBuffer()), null, null);
    checkArgument(
        type == DataType.STRING || data.remaining() == t.byteSize(),
        "Tensor '%s': %s bytes of data for %s elements of %s (expected %s bytes)",
        name,
        data.remaining(),
        t.numElements(),
        type,
        t.byteSize());
    return t;
  }

  public static DenseTensor ofFloats(String name, long[] dims, float... values) {
    ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    b.asFloatBuffer().put(values);
    return ofRaw(name, DataType.FLOAT, dims, b);
  }

  public static DenseTensor ofDoubles(String name, long[] dims, double... values) {
    ByteBuffer b = ByteBuffer.allocate(values.length * 8).order(ByteOrder.LITTLE_ENDIAN);
    b.asDoubleBuffer().put(values);
    return ofRaw(name, DataType.DOUBLE, dims, b);
  }

  public static DenseTensor ofLongs(String name, long[] dims, long... values) {
    ByteBuffer b = ByteBuffer.allocate(values.length * 8).order(ByteOrder.LITTLE_ENDIAN);
    b.asLongBuffer().put(values);
    return ofRaw(name, DataType.INT64, dims, b);
  }

  public static DenseTensor ofInts(String name, long[] dims, int... values) {
    ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    b.asIntBuffer().put(values);
    return ofRaw(name, DataType.INT32, dims, b);
  }

  public static DenseTensor ofBools(String name, long[] dims, boolean... values) {
    ByteBuffer b = ByteBuffer.allocate(values.length);
    for (boolean v : values) b.put((byte) (v ? 1 : 0));
    b.flip();
    return ofRaw(name, DataType.BOOL, dims, b);
  }

  /** A rank-0 float. */
  public static DenseTensor scalar(String name, float value) {
    return ofFloats(name, new long[0], value);
  }

  /** A rank-0 int64. */
  public static DenseTensor scalar(String name, long value) {
    return ofLongs(name, new long[0], value);
  }

  /** A 1-D int64 vector, the usual form of shapes and axes. */
  public static DenseTensor vector(String name, long... values) {
    return ofLongs(name, new long[] {values.length}, values);
  }

  @Override
  public String name() {
    return name;
  }

  @Override
  public DataType dataType() {
    return dataType;
  }

  @Override
  public long[] dims() {
    return dims.clone();
  }

  @Override
  public String docString() {
    return docString;
  }

  @Override
  public byte[] extras() {
    return extras.clone();
  }

  public Storage storage() {
    return storage;
  }

  @Override
  public DenseTensor withName(String newName) {
    return new DenseTensor(newName, dataType, dims, storage, docString, extras);
  }

  /**
   * This tensor with its data in a direct buffer of its own, outside the Java heap (itself when its
   * data is there already): ONNX Runtime reads such a buffer in place, where it copies a heap
   * array. Same name, type, dims, doc string and extras; the data becomes raw bytes.
   */
  public DenseTensor offHeap() {
    checkArgument(dataType != DataType.STRING, "Tensor '%s' holds strings, which have no raw form", name);
    if (storage instanceof Storage.Raw r && r.bytes().isDirect()) return this;
    ByteBuffer src = rawData();
    ByteBuffer direct = ByteBuffer.allocateDirect(src.remaining()).order(ByteOrder.LITTLE_ENDIAN);
    direct.put(src).flip();
    return new DenseTensor(name, dataType, dims, new Storage.Raw(direct.asReadOnlyBuffer()), docString, extras);
  }

  @Override
  public ByteBuffer rawData() {
    ByteBuffer r = raw;
    if (r == null) {
      r = TypedData.toRaw(this);
      raw = r;
    }
    return r.asReadOnlyBuffer().order(ByteOrder.LITTLE_ENDIAN);
  }

  /** String elements, for STRING tensors. */
  public List<byte[]> strings() {
    if (storage instanceof Storage.Strings s) {
      return s.values();
    }
    throw new IllegalStateException("Tensor '" + name + "' holds no string data");
  }

  @Override
  public String toString() {
    return "DenseTensor(" + name + ", " + dataType + ", " + java.util.Arrays.toString(dims) + ")";
  }
}
