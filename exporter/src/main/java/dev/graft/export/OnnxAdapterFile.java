package dev.graft.export;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.base.Strings;
import com.google.common.collect.ImmutableMap;
import com.google.flatbuffers.FlatBufferBuilder;
import com.google.flatbuffers.Table;
import dev.graft.ir.DataType;
import dev.graft.ir.io.AtomicFiles;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;

/**
 * Writes ONNX Runtime's LoRA adapter format ({@code .onnx_adapter}), which {@code
 * ai.onnxruntime.OrtLoraAdapter} loads and {@code RunOptions.addActiveLoraAdapter} activates, so
 * that one session of a base model serves many adapters.
 *
 * <h2>The format</h2>
 *
 * A FlatBuffer with file identifier {@code "TORT"} and this schema (ONNX Runtime, {@code
 * onnxruntime/lora/adapter_format/adapter_schema.fbs}, namespace {@code onnxruntime.adapters}):
 *
 * <pre>
 * table Parameter { name:string; dims:[int64]; data_type:TensorDataType (int32, the ONNX codes);
 *                   raw_data:[uint8] (force_align: 8); }
 * table Adapter   { format_version:int; adapter_version:int; model_version:int;
 *                   parameters:[Parameter]; }
 * root_type Adapter;
 * </pre>
 *
 * No schema compiler runs here: the tables are laid out by hand with {@link FlatBufferBuilder}.
 * Field {@code i} of a table lives in vtable slot {@code i} (byte offset {@code 4 + 2i}).
 * {@code format_version} is 1, the only version ONNX Runtime accepts ({@code
 * adapter_format_version.h}: {@code kAdapterFormatVersion = 1}; loading any other fails with
 * "Unsupported lora format version"). {@code adapter_version} and {@code model_version} are free
 * for the caller; ONNX Runtime stores them and checks nothing. Every parameter gets its raw_data
 * vector even when empty, because ONNX Runtime dereferences it without a null check, and the
 * parameters vector is always written for the same reason. Parameters must have at least one
 * dimension: ONNX Runtime 1.29 refuses an empty dims vector ("dims is missing or empty"), so
 * scalars are refused here, before they make a file ORT cannot load. raw_data starts 8-byte aligned
 * (the schema's force_align), since ONNX Runtime wraps it in place as the tensor's data.
 *
 * <h2>What the model must look like</h2>
 *
 * ONNX Runtime has no notion of "LoRA weights" in the graph: at {@code Run} it appends every
 * parameter of every active adapter to the feeds, by name, as if the caller had passed it ({@code
 * CheckAndAdjustInputSpansForLora} in {@code onnxruntime_c_api.cc}). So:
 *
 * <ul>
 *   <li>each parameter's name must be a graph input of the base model, with a matching element
 *       type and a shape the parameter fits (symbolic dims are fine);
 *   <li>such an input is either a plain graph input, which then must be fed on every run, by an
 *       adapter or by the caller; or an initializer also listed among the graph inputs (an
 *       "overridable initializer"), whose value serves when no adapter is active, which with
 *       {@code B = 0} makes the bare session the base model (ONNX Runtime then warns that the
 *       initializer "appears in graph inputs and will not be treated as constant", which is the
 *       point: it must stay replaceable);
 *   <li>the caller must not also feed a name an active adapter supplies, and adapters active at
 *       the same time must not share parameter names (ONNX Runtime's API documentation);
 *   <li>there is no naming convention: any input name works, the adapter's names just have to
 *       match.
 * </ul>
 *
 * The feeding happens only in {@code Run}; ORT's {@code RunWithBinding} ignores active adapters
 * (the Java API has no binding, so this does not arise here).
 *
 * <p>{@link #read} reads a file back (the tables through FlatBuffers' {@link Table} accessors, as
 * generated code would), for runtimes without the adapter API, which feed the parameters as
 * inputs themselves, and to check an adapter against a model before running it.
 */
public final class OnnxAdapterFile {

  /** The file identifier of the schema ({@code file_identifier "TORT"}). */
  public static final String FILE_IDENTIFIER = "TORT";

  /** The only format version ONNX Runtime loads ({@code kAdapterFormatVersion}). */
  public static final int FORMAT_VERSION = 1;

  /** The file name extension ONNX Runtime's documentation gives the format. */
  public static final String EXTENSION = ".onnx_adapter";

  /** The last code of the schema's TensorDataType enum (FLOAT8E5M2FNUZ). */
  private static final int LAST_SCHEMA_TYPE_CODE = 20;

  // vtable slots, in schema field order.
  private static final int PARAMETER_NAME = 0;
  private static final int PARAMETER_DIMS = 1;
  private static final int PARAMETER_DATA_TYPE = 2;
  private static final int PARAMETER_RAW_DATA = 3;
  private static final int PARAMETER_FIELDS = 4;

  private static final int ADAPTER_FORMAT_VERSION = 0;
  private static final int ADAPTER_ADAPTER_VERSION = 1;
  private static final int ADAPTER_MODEL_VERSION = 2;
  private static final int ADAPTER_PARAMETERS = 3;
  private static final int ADAPTER_FIELDS = 4;

  private OnnxAdapterFile() {}

  /**
   * Writes an adapter file holding {@code parameters} (keyed by the graph input each one feeds;
   * the tensors' own names are ignored), replacing {@code file} atomically where the file system
   * allows.
   */
  public static void write(
      Path file, Map<String, Tensor> parameters, int adapterVersion, int modelVersion) {
    checkArgument(file != null, "OnnxAdapterFile.write needs a file, got null");
    byte[] bytes = toBytes(parameters, adapterVersion, modelVersion);
    AtomicFiles.write(file, tmp -> Files.write(tmp, bytes));
  }

  /**
   * The adapter file's bytes, for {@code OrtLoraAdapter.create(byte[])}. Parameters are stored in
   * name order, so equal inputs give equal bytes.
   */
  public static byte[] toBytes(Map<String, Tensor> parameters, int adapterVersion, int modelVersion) {
    checkArgument(parameters != null, "OnnxAdapterFile needs a parameter map, got null");
    checkArgument(
        !parameters.isEmpty(),
        "An adapter needs at least one parameter; got none. Pass the LoRA A and B tensors keyed by"
            + " the graph inputs they feed.");
    Map<String, Tensor> sorted = new TreeMap<>(parameters);
    long dataBytes = 0;
    for (Map.Entry<String, Tensor> e : sorted.entrySet()) {
      check(e.getKey(), e.getValue());
      dataBytes += e.getValue().byteSize();
    }
    checkArgument(
        dataBytes < Integer.MAX_VALUE - (1 << 20),
        "The adapter's %s bytes of parameters exceed what one FlatBuffer can hold (2 GiB)",
        dataBytes);

    FlatBufferBuilder b = new FlatBufferBuilder((int) Math.max(1024, dataBytes + 1024));
    int[] params = new int[sorted.size()];
    int i = 0;
    for (Map.Entry<String, Tensor> e : sorted.entrySet()) {
      params[i++] = parameter(b, e.getKey(), e.getValue());
    }
    int paramVector = b.createVectorOfTables(params);

    b.startTable(ADAPTER_FIELDS);
    b.addInt(ADAPTER_FORMAT_VERSION, FORMAT_VERSION, 0);
    b.addInt(ADAPTER_ADAPTER_VERSION, adapterVersion, 0);
    b.addInt(ADAPTER_MODEL_VERSION, modelVersion, 0);
    b.addOffset(ADAPTER_PARAMETERS, paramVector, 0);
    int adapter = b.endTable();
    b.finish(adapter, FILE_IDENTIFIER);
    return b.sizedByteArray();
  }

  /**
   * The parameters of an adapter file, keyed by the graph input each one feeds, in file order.
   * A file that is not a format-version-1 ORT adapter, or whose tables run past its end, is refused
   * with one line saying so.
   */
  public static ImmutableMap<String, Tensor> read(Path file) {
    checkArgument(file != null, "OnnxAdapterFile.read needs a file, got null");
    checkArgument(Files.isRegularFile(file), "Adapter file %s does not exist; pass the adapter%s that graft export --adapter-only wrote", file, EXTENSION);
    byte[] bytes;
    try {
      bytes = Files.readAllBytes(file);
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot read " + file + ": " + e.getMessage(), e);
    }
    ByteBuffer bb = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
    checkArgument(
        bytes.length >= 8 && FILE_IDENTIFIER.equals(new String(bytes, 4, 4, java.nio.charset.StandardCharsets.ISO_8859_1)),
        "%s is not an ONNX Runtime adapter: it lacks the file identifier \"%s\" at byte 4",
        file,
        FILE_IDENTIFIER);
    try {
      AdapterTable adapter = new AdapterTable(bb.getInt(0), bb);
      checkArgument(
          adapter.formatVersion() == FORMAT_VERSION,
          "%s has adapter format version %s; ONNX Runtime (and Graft) read version %s",
          file,
          adapter.formatVersion(),
          FORMAT_VERSION);
      ImmutableMap.Builder<String, Tensor> out = ImmutableMap.builder();
      for (int i = 0; i < adapter.parameterCount(); i++) {
        ParameterTable p = adapter.parameter(i);
        String name = p.name();
        checkArgument(name != null && !name.isEmpty(), "%s: parameter %s has no name", file, i);
        DataType type = DataType.fromCodeOrNull(p.dataType());
        checkArgument(
            type != null && type != DataType.UNDEFINED && type != DataType.STRING,
            "%s: parameter '%s' has element type code %s, which is no fixed-width ONNX type",
            file,
            name,
            p.dataType());
        DenseTensor t = DenseTensor.ofRaw(name, type, p.dims(), p.rawData());
        out.put(name, t);
      }
      return out.buildOrThrow();
    } catch (IndexOutOfBoundsException | java.nio.BufferUnderflowException e) {
      throw new IllegalArgumentException(file + " is truncated or not an ONNX Runtime adapter: its tables point past the end of the file", e);
    }
  }

  /** The schema's {@code Adapter} table (vtable byte offset of field i: 4 + 2i). */
  private static final class AdapterTable extends Table {
    AdapterTable(int pos, ByteBuffer bb) {
      __reset(pos, bb);
    }

    int formatVersion() {
      int o = __offset(4 + 2 * ADAPTER_FORMAT_VERSION);
      return o == 0 ? 0 : bb.getInt(bb_pos + o);
    }

    int parameterCount() {
      int o = __offset(4 + 2 * ADAPTER_PARAMETERS);
      return o == 0 ? 0 : __vector_len(o);
    }

    ParameterTable parameter(int i) {
      int o = __offset(4 + 2 * ADAPTER_PARAMETERS);
      return new ParameterTable(__indirect(__vector(o) + 4 * i), bb);
    }
  }

  /** The schema's {@code Parameter} table. */
  private static final class ParameterTable extends Table {
    ParameterTable(int pos, ByteBuffer bb) {
      __reset(pos, bb);
    }

    String name() {
      int o = __offset(4 + 2 * PARAMETER_NAME);
      return o == 0 ? null : __string(bb_pos + o);
    }

    long[] dims() {
      int o = __offset(4 + 2 * PARAMETER_DIMS);
      long[] d = new long[o == 0 ? 0 : __vector_len(o)];
      for (int k = 0; k < d.length; k++) d[k] = bb.getLong(__vector(o) + Long.BYTES * k);
      return d;
    }

    int dataType() {
      int o = __offset(4 + 2 * PARAMETER_DATA_TYPE);
      return o == 0 ? 0 : bb.getInt(bb_pos + o);
    }

    /** A little-endian copy of the raw bytes. */
    ByteBuffer rawData() {
      int o = __offset(4 + 2 * PARAMETER_RAW_DATA);
      int n = o == 0 ? 0 : __vector_len(o);
      if (n > 0 && (long) __vector(o) + n > bb.limit()) {
        throw new IndexOutOfBoundsException("raw_data runs past the end of the file");
      }
      ByteBuffer copy = ByteBuffer.allocate(n).order(ByteOrder.LITTLE_ENDIAN);
      if (n > 0) copy.put(bb.duplicate().position(__vector(o)).limit(__vector(o) + n)).flip();
      return copy;
    }
  }

  private static void check(String name, Tensor t) {
    checkArgument(
        !Strings.isNullOrEmpty(name),
        "An adapter parameter needs a name: the graph input it feeds");
    checkArgument(t != null, "Adapter parameter '%s' is null", name);
    DataType type = t.dataType();
    checkArgument(
        type != DataType.UNDEFINED
            && type != DataType.STRING
            && type.code() <= LAST_SCHEMA_TYPE_CODE
            && type.bits() % 8 == 0,
        "Adapter parameter '%s' is %s, which ONNX Runtime's adapter format cannot hold (it takes"
            + " fixed-width types up to FLOAT8E5M2FNUZ). Convert it, e.g. to FLOAT or FLOAT16.",
        name,
        type);
    long[] dims = t.dims();
    checkArgument(
        dims.length > 0,
        "Adapter parameter '%s' is a scalar; ONNX Runtime refuses adapter parameters with no dims"
            + " (\"dims is missing or empty\"). Store it with shape [1] and declare the graph input"
            + " so.",
        name);
    for (long d : dims) {
      checkArgument(d >= 0, "Adapter parameter '%s' has a negative dimension: %s", name, t.shape());
    }
    checkArgument(
        t.rawData().remaining() == t.byteSize(),
        "Adapter parameter '%s' holds %s bytes, but %s elements of %s need %s",
        name,
        t.rawData().remaining(),
        t.numElements(),
        type,
        t.byteSize());
  }

  /** One Parameter table; its children (string, vectors) are built first, as FlatBuffers needs. */
  private static int parameter(FlatBufferBuilder b, String name, Tensor t) {
    ByteBuffer data = t.rawData().duplicate();
    // force_align: 8 on raw_data: the vector's first byte lands on an 8-byte boundary.
    ByteBuffer slot = b.createUnintializedVector(1, data.remaining(), 8);
    slot.put(data);
    int rawData = b.endVector();

    long[] dims = t.dims();
    b.startVector(Long.BYTES, dims.length, Long.BYTES);
    // The builder grows downwards: elements go in last to first.
    for (int d = dims.length - 1; d >= 0; d--) b.addLong(dims[d]);
    int dimsVector = b.endVector();

    int nameString = b.createString(name);

    b.startTable(PARAMETER_FIELDS);
    b.addOffset(PARAMETER_NAME, nameString, 0);
    b.addOffset(PARAMETER_DIMS, dimsVector, 0);
    b.addInt(PARAMETER_DATA_TYPE, t.dataType().code(), 0);
    b.addOffset(PARAMETER_RAW_DATA, rawData, 0);
    return b.endTable();
  }
}
