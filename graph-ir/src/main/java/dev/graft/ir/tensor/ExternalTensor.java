package dev.graft.ir.tensor;

import static com.google.common.base.Preconditions.checkArgument;

import dev.graft.ir.DataType;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.List;
import java.util.Map;

/**
 * A tensor whose data lives in a file beside the model (TensorProto.data_location = EXTERNAL).
 *
 * <p>Nothing is read until {@link #rawData()}: then the tensor's region of the file, and only
 * that region, is memory-mapped, so data files over 2 GiB work as long as one tensor is under 2
 * GiB. The location is checked when the tensor is made: it must be a relative path that stays
 * inside the model's folder, with no {@code ..} segment, and no link may lead out of the folder.
 *
 * <p>{@code entries} keeps the external_data key/value list exactly as the model wrote it, so
 * that a save without changes writes it back unchanged.
 */
public final class ExternalTensor implements Tensor {
  private final String name;
  private final DataType dataType;
  private final long[] dims;
  private final String docString;
  private final byte[] extras;
  private final Path baseDir;
  private final String location;
  private final long offset;
  private final long length;
  private final List<Map.Entry<String, String>> entries;
  private volatile ByteBuffer mapped;
  /** The identity (device and inode) of the file the mapping was made from; null until then. */
  private volatile Object mappedFileKey;

  public ExternalTensor(
      String name,
      DataType dataType,
      long[] dims,
      Path baseDir,
      String location,
      long offset,
      long length,
      List<Map.Entry<String, String>> entries,
      String docString,
      byte[] extras) {
    this.name = name;
    this.dataType = dataType;
    this.dims = dims.clone();
    this.baseDir = baseDir;
    this.location = location;
    this.offset = offset;
    this.length = length < 0 ? dataType.byteCount(numElementsOf(dims)) : length;
    this.entries = List.copyOf(entries);
    this.docString = docString;
    this.extras = extras == null ? new byte[0] : extras;
    checkArgument(offset >= 0, "Tensor '%s': negative external data offset %s", name, offset);
  }

  private static long numElementsOf(long[] dims) {
    long n = 1;
    for (long d : dims) n = Math.multiplyExact(n, d);
    return n;
  }

  /**
   * Resolves {@code location} against the model's folder, refusing any path that could leave it.
   *
   * @throws ExternalDataException with what, where and how to fix it
   */
  public static Path resolveInside(Path baseDir, String location, String tensorName) {
    if (location == null || location.isEmpty()) {
      throw new ExternalDataException(
          "Tensor '" + tensorName + "' is marked external but has no 'location' entry.");
    }
    Path rel = Path.of(location.replace('\\', '/'));
    if (rel.isAbsolute() || location.startsWith("/") || location.matches("^[A-Za-z]:.*")) {
      throw new ExternalDataException(
          "Tensor '"
              + tensorName
              + "': external data location '"
              + location
              + "' is an absolute path. Locations must be relative to the model's folder; move"
              + " the data file next to the model and give its relative name.");
    }
    for (Path part : rel) {
      if (part.toString().equals("..")) {
        throw new ExternalDataException(
            "Tensor '"
                + tensorName
                + "': external data location '"
                + location
                + "' has a '..' segment and could escape the model's folder "
                + baseDir
                + ". Keep data files inside the model's folder.");
      }
    }
    Path base = baseDir.toAbsolutePath().normalize();
    Path file = base.resolve(rel).normalize();
    if (Files.exists(file)) {
      try {
        Path realBase = base.toRealPath();
        Path realFile = file.toRealPath();
        if (!realFile.startsWith(realBase)) {
          throw new ExternalDataException(
              "Tensor '"
                  + tensorName
                  + "': external data location '"
                  + location
                  + "' is a link that leads out of the model's folder (to "
                  + realFile
                  + "). Copy the data into the folder instead of linking to it.");
        }
      } catch (IOException e) {
        throw new ExternalDataException(
            "Tensor '" + tensorName + "': cannot resolve external data file " + file + ": " + e);
      }
    }
    return file;
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

  public Path baseDir() {
    return baseDir;
  }

  public String location() {
    return location;
  }

  public long offset() {
    return offset;
  }

  public long length() {
    return length;
  }

  /** The data file, checked to lie inside the model's folder. */
  public Path file() {
    return resolveInside(baseDir, location, name);
  }

  /** The external_data entries as the model wrote them. */
  public List<Map.Entry<String, String>> entries() {
    return entries;
  }

  /** True once the data has been mapped: later changes to the file no longer affect it. */
  public boolean isMapped() {
    return mapped != null;
  }

  @Override
  public ExternalTensor withName(String newName) {
    ExternalTensor t =
        new ExternalTensor(
            newName, dataType, dims, baseDir, location, offset, length, entries, docString,
            extras);
    t.mapped = mapped;
    t.mappedFileKey = mappedFileKey;
    return t;
  }

  /**
   * Whether the file at {@link #file()} still holds this tensor's data, so that another model
   * file (an ORT session's, an export's) may point at it or copy from it instead of going
   * through memory: true while the tensor is unmapped and the file exists, or when the file is
   * still the very file the mapping was made from (a save that replaced it made a new file).
   */
  public boolean fileHoldsData() {
    Path f;
    try {
      f = file();
    } catch (RuntimeException e) {
      return false;
    }
    if (!Files.isRegularFile(f)) return false;
    if (mapped == null) return true;
    Object key = mappedFileKey;
    return key != null && key.equals(fileKey(f));
  }

  private static Object fileKey(Path f) {
    try {
      return Files.readAttributes(f, BasicFileAttributes.class).fileKey();
    } catch (IOException e) {
      return null;
    }
  }

  @Override
  public ByteBuffer rawData() {
    ByteBuffer m = mapped;
    if (m == null) {
      synchronized (this) {
        m = mapped;
        if (m == null) {
          m = map();
          mapped = m;
        }
      }
    }
    return m.asReadOnlyBuffer().order(ByteOrder.LITTLE_ENDIAN);
  }

  private ByteBuffer map() {
    Path file = file();
    if (!Files.isRegularFile(file, LinkOption.NOFOLLOW_LINKS) && !Files.isRegularFile(file)) {
      throw new ExternalDataException(
          "Tensor '"
              + name
              + "': external data file '"
              + location
              + "' not found in "
              + baseDir.toAbsolutePath()
              + ". Keep the data file next to the .onnx file it belongs to.");
    }
    if (length > Integer.MAX_VALUE) {
      throw new ExternalDataException(
          "Tensor '" + name + "' has " + length + " bytes; one tensor over 2 GiB cannot be mapped.");
    }
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
      long size = ch.size();
      if (offset + length > size) {
        throw new ExternalDataException(
            "Tensor '"
                + name
                + "': external data file '"
                + location
                + "' has "
                + size
                + " bytes, but the tensor needs bytes "
                + offset
                + " to "
                + (offset + length)
                + ". The data file is truncated or belongs to another model.");
      }
      if (length == 0) {
        mappedFileKey = fileKey(file);
        return ByteBuffer.allocate(0);
      }
      MappedByteBuffer buf = ch.map(FileChannel.MapMode.READ_ONLY, offset, length);
      mappedFileKey = fileKey(file);
      return buf;
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot read external data of tensor '" + name + "'", e);
    }
  }

  @Override
  public String toString() {
    return "ExternalTensor(" + name + ", " + dataType + ", " + java.util.Arrays.toString(dims)
        + ", " + location + "@" + offset + "+" + length + ")";
  }
}
