package dev.graft.tools.check;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableMap;
import dev.graft.ir.DataType;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Tensors crossing to another process as files: the elements raw, little-endian, row-major, one
 * file per tensor; the name, element type (numpy/ORT-JS spelling: {@code float32}, {@code
 * int64}, ...) and dims travel in a JSON request or response beside them.
 */
final class TensorFiles {
  private static final ImmutableMap<DataType, String> NAMES =
      ImmutableMap.of(
          DataType.FLOAT, "float32",
          DataType.DOUBLE, "float64",
          DataType.INT64, "int64",
          DataType.INT32, "int32",
          DataType.INT8, "int8",
          DataType.UINT8, "uint8",
          DataType.BOOL, "bool");

  private TensorFiles() {}

  /** The element type's name in ORT for JavaScript. */
  static String typeName(DataType t) {
    String n = NAMES.get(t);
    checkArgument(n != null, "Tensors of type %s cannot be exchanged with other runtimes (%s only)", t, NAMES.keySet());
    return n;
  }

  static DataType dataType(String name) {
    return NAMES.entrySet().stream()
        .filter(e -> e.getValue().equals(name))
        .map(java.util.Map.Entry::getKey)
        .findFirst()
        .orElseThrow(() -> new IllegalArgumentException("Unknown element type '" + name + "' from another runtime"));
  }

  static void write(Tensor t, Path file) {
    ByteBuffer raw = t.rawData().duplicate().order(ByteOrder.LITTLE_ENDIAN);
    byte[] bytes = new byte[raw.remaining()];
    raw.get(bytes);
    try {
      Files.write(file, bytes);
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot write " + file, e);
    }
  }

  static DenseTensor read(String name, DataType type, long[] dims, Path file) {
    try {
      return DenseTensor.ofRaw(name, type, dims, ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN));
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot read " + file, e);
    }
  }
}
