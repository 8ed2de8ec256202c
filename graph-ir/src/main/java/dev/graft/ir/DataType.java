package dev.graft.ir;

import com.google.common.collect.ImmutableMap;
import java.util.Arrays;
import java.util.Map;
import java.util.function.Function;
import java.util.stream.Collectors;

/**
 * ONNX tensor element types, with their wire codes (TensorProto.DataType) and storage widths.
 *
 * <p>{@link #bits()} is the storage width of one element in raw data: 4 for the int4 family (two
 * per byte), 0 for strings, whose elements have no fixed width.
 */
public enum DataType {
  UNDEFINED(0, 0),
  FLOAT(1, 32),
  UINT8(2, 8),
  INT8(3, 8),
  UINT16(4, 16),
  INT16(5, 16),
  INT32(6, 32),
  INT64(7, 64),
  STRING(8, 0),
  BOOL(9, 8),
  FLOAT16(10, 16),
  DOUBLE(11, 64),
  UINT32(12, 32),
  UINT64(13, 64),
  COMPLEX64(14, 64),
  COMPLEX128(15, 128),
  BFLOAT16(16, 16),
  FLOAT8E4M3FN(17, 8),
  FLOAT8E4M3FNUZ(18, 8),
  FLOAT8E5M2(19, 8),
  FLOAT8E5M2FNUZ(20, 8),
  UINT4(21, 4),
  INT4(22, 4),
  FLOAT4E2M1(23, 4),
  FLOAT8E8M0(24, 8),
  UINT2(25, 2),
  INT2(26, 2);

  private static final Map<Integer, DataType> BY_CODE =
      ImmutableMap.copyOf(
          Arrays.stream(values()).collect(Collectors.toMap(DataType::code, Function.identity())));

  private final int code;
  private final int bits;

  DataType(int code, int bits) {
    this.code = code;
    this.bits = bits;
  }

  /** The TensorProto.DataType wire code. */
  public int code() {
    return code;
  }

  /** Bits per element in raw data; 0 for {@link #STRING} and {@link #UNDEFINED}. */
  public int bits() {
    return bits;
  }

  /** Bytes needed to store {@code count} elements as raw data, rounding sub-byte types up. */
  public long byteCount(long count) {
    return (count * bits + 7) / 8;
  }

  public boolean isFloatingPoint() {
    return switch (this) {
      case FLOAT, DOUBLE, FLOAT16, BFLOAT16, FLOAT8E4M3FN, FLOAT8E4M3FNUZ, FLOAT8E5M2,
          FLOAT8E5M2FNUZ, FLOAT4E2M1, FLOAT8E8M0 -> true;
      default -> false;
    };
  }

  public boolean isInteger() {
    return switch (this) {
      case UINT8, INT8, UINT16, INT16, INT32, INT64, UINT32, UINT64, UINT4, INT4, UINT2, INT2 ->
          true;
      default -> false;
    };
  }

  /**
   * The type for a wire code. Codes this build does not know map to {@link #UNDEFINED} only through
   * {@link #fromCodeOrNull}; this method refuses them.
   */
  public static DataType fromCode(int code) {
    DataType t = BY_CODE.get(code);
    if (t == null) {
      throw new IllegalArgumentException(
          "Unknown ONNX tensor data type code " + code + "; Graft knows codes 0 to 26.");
    }
    return t;
  }

  public static DataType fromCodeOrNull(int code) {
    return BY_CODE.get(code);
  }
}
