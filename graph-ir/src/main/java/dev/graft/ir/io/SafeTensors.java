package dev.graft.ir.io;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableBiMap;
import com.google.common.collect.ImmutableMap;
import com.google.gson.Strictness;
import com.google.gson.stream.JsonReader;
import com.google.gson.stream.JsonToken;
import com.google.gson.stream.JsonWriter;
import dev.graft.ir.DataType;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import java.io.IOException;
import java.io.StringReader;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * Reads and writes the safetensors format (Hugging Face), the file format of Graft's checkpoints
 * and adapter exports.
 *
 * <pre>
 * [8 bytes: N, unsigned little-endian]
 * [N bytes: UTF-8 JSON header, padded with spaces to a multiple of 8]
 *     {"__metadata__": {"key": "value", ...},
 *      "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
 * [data: every tensor's little-endian bytes, back to back; offsets relative to here]
 * </pre>
 *
 * <p>Writing follows the reference implementation ({@code huggingface/safetensors}, {@code
 * tensor.rs}): the header is compact JSON with {@code __metadata__} first (left out when empty),
 * padded with spaces so the data starts 8-byte aligned, and tensors are laid out by descending
 * element size, then by name. That order is deterministic and keeps every tensor aligned to its
 * element size, so readers that map the file can view the data in place. The file is written to a
 * temporary file in the same folder and moved into place: a failed write leaves what was there.
 *
 * <p>Reading checks what the reference reader checks, and says which file and tensor broke which
 * rule: the header fits in the file and is at most 100 MB, it is a JSON object, every dtype is
 * known, offsets start at 0 and are contiguous, the last one ends exactly at the end of the file,
 * and each tensor's byte length is its element count times its element size. Tensor data is
 * copied onto the heap, so the returned tensors do not depend on the file afterwards.
 */
public final class SafeTensors {

  /** The header key that holds the string-to-string metadata rather than a tensor. */
  public static final String METADATA_KEY = "__metadata__";

  /** The reference reader refuses larger headers; so do we, before allocating them. */
  private static final long MAX_HEADER_BYTES = 100_000_000L;

  /** safetensors dtype names and the ONNX types with the same bit layout. */
  private static final ImmutableBiMap<String, DataType> DTYPES =
      ImmutableBiMap.<String, DataType>builder()
          .put("BOOL", DataType.BOOL)
          .put("U8", DataType.UINT8)
          .put("I8", DataType.INT8)
          .put("F8_E5M2", DataType.FLOAT8E5M2)
          .put("F8_E4M3", DataType.FLOAT8E4M3FN)
          .put("F8_E8M0", DataType.FLOAT8E8M0)
          .put("I16", DataType.INT16)
          .put("U16", DataType.UINT16)
          .put("F16", DataType.FLOAT16)
          .put("BF16", DataType.BFLOAT16)
          .put("I32", DataType.INT32)
          .put("U32", DataType.UINT32)
          .put("F32", DataType.FLOAT)
          .put("F64", DataType.DOUBLE)
          .put("I64", DataType.INT64)
          .put("U64", DataType.UINT64)
          .put("C64", DataType.COMPLEX64)
          .build();

  /** What a file holds: tensors in file order, and the header's metadata. */
  public record Contents(Map<String, Tensor> tensors, Map<String, String> metadata) {
    public Contents {
      tensors = ImmutableMap.copyOf(tensors);
      metadata = ImmutableMap.copyOf(metadata);
    }
  }

  /** A file that breaks the safetensors format; the message names the file and the tensor. */
  public static final class FormatException extends RuntimeException {
    public FormatException(String message) {
      super(message);
    }

    public FormatException(String message, Throwable cause) {
      super(message, cause);
    }
  }

  private SafeTensors() {}

  /** The safetensors dtype name of {@code t}, e.g. "F32"; throws for types the format lacks. */
  public static String dtypeName(DataType t) {
    String name = DTYPES.inverse().get(t);
    checkArgument(
        name != null,
        "safetensors has no dtype for %s; it stores %s. Convert the tensor to one of those types.",
        t,
        DTYPES.values());
    return name;
  }

  // ---- writing ----------------------------------------------------------------------------------

  /**
   * Writes {@code tensors} (keyed by the name to store; the tensors' own names are ignored) and
   * {@code metadata} to {@code file}, replacing it atomically where the file system allows.
   */
  public static void write(Path file, Map<String, Tensor> tensors, Map<String, String> metadata) {
    checkArgument(file != null, "SafeTensors.write needs a file, got null");
    List<Map.Entry<String, Tensor>> order = layout(tensors);
    byte[] header = header(order, metadata == null ? Map.of() : metadata);
    AtomicFiles.write(
        file,
        tmp -> {
          try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE)) {
            ByteBuffer prefix =
                ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, header.length);
            writeFully(ch, prefix);
            writeFully(ch, ByteBuffer.wrap(header));
            for (Map.Entry<String, Tensor> e : order) {
              writeFully(ch, e.getValue().rawData());
            }
            ch.force(true);
          }
        });
  }

  /** Checks every tensor and returns them in data order: descending element size, then name. */
  private static List<Map.Entry<String, Tensor>> layout(Map<String, Tensor> tensors) {
    checkArgument(tensors != null, "SafeTensors.write needs a tensor map, got null");
    List<Map.Entry<String, Tensor>> order = new ArrayList<>(new TreeMap<>(tensors).entrySet());
    for (Map.Entry<String, Tensor> e : order) {
      String name = e.getKey();
      Tensor t = e.getValue();
      checkArgument(
          !name.equals(METADATA_KEY),
          "Cannot store a tensor called '%s': safetensors reserves that key for metadata. Rename it.",
          name);
      checkArgument(t != null, "Tensor '%s' is null", name);
      checkArgument(
          DTYPES.containsValue(t.dataType()),
          "Cannot store tensor '%s' of type %s: safetensors has no such dtype (it stores %s)."
              + " Convert it first.",
          name,
          t.dataType(),
          DTYPES.values());
      for (long d : t.dims()) {
        checkArgument(d >= 0, "Tensor '%s' has a negative dimension: %s", name, t.shape());
      }
      long bytes = t.rawData().remaining();
      checkArgument(
          bytes == t.byteSize(),
          "Tensor '%s' holds %s bytes, but %s elements of %s need %s",
          name,
          bytes,
          t.numElements(),
          t.dataType(),
          t.byteSize());
    }
    order.sort(
        Comparator.<Map.Entry<String, Tensor>>comparingInt(e -> -e.getValue().dataType().bits())
            .thenComparing(Map.Entry::getKey));
    return order;
  }

  private static byte[] header(List<Map.Entry<String, Tensor>> order, Map<String, String> metadata) {
    StringWriter text = new StringWriter();
    // A bare JsonWriter writes compact JSON, as serde_json does, and escapes only what JSON
    // requires (no HTML escaping of '<', '=' and the like).
    try (JsonWriter w = new JsonWriter(text)) {
      w.setHtmlSafe(false);
      w.beginObject();
      if (!metadata.isEmpty()) {
        // Sorted, so that equal metadata gives equal bytes whatever map the caller used.
        w.name(METADATA_KEY).beginObject();
        for (Map.Entry<String, String> e : new TreeMap<>(metadata).entrySet()) {
          checkArgument(e.getValue() != null, "Metadata key '%s' has a null value", e.getKey());
          w.name(e.getKey()).value(e.getValue());
        }
        w.endObject();
      }
      long offset = 0;
      for (Map.Entry<String, Tensor> e : order) {
        Tensor t = e.getValue();
        long end = offset + t.byteSize();
        w.name(e.getKey()).beginObject();
        w.name("dtype").value(DTYPES.inverse().get(t.dataType()));
        w.name("shape").beginArray();
        for (long d : t.dims()) w.value(d);
        w.endArray();
        w.name("data_offsets").beginArray().value(offset).value(end).endArray();
        w.endObject();
        offset = end;
      }
      w.endObject();
    } catch (IOException e) {
      throw new UncheckedIOException(e); // a StringWriter does not fail
    }
    byte[] json = text.toString().getBytes(StandardCharsets.UTF_8);
    int padded = (json.length + 7) / 8 * 8;
    byte[] out = new byte[padded];
    System.arraycopy(json, 0, out, 0, json.length);
    for (int i = json.length; i < padded; i++) out[i] = ' ';
    return out;
  }

  private static void writeFully(FileChannel ch, ByteBuffer b) throws IOException {
    ByteBuffer d = b.duplicate();
    while (d.hasRemaining()) ch.write(d);
  }


  // ---- reading ----------------------------------------------------------------------------------

  /** Reads and validates {@code file}; see the class comment for what is checked. */
  public static Contents read(Path file) {
    checkArgument(file != null, "SafeTensors.read needs a file, got null");
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
      return read(file, ch);
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot read " + file + ": " + e.getMessage(), e);
    }
  }

  /** One header entry, before its data is read. */
  private record Entry(String name, DataType type, long[] dims, long begin, long end) {}

  private static Contents read(Path file, FileChannel ch) throws IOException {
    long size = ch.size();
    if (size < 8) {
      throw bad(file, "it is " + size + " bytes long, shorter than the 8-byte header length");
    }
    ByteBuffer prefix = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
    readFully(ch, prefix, 0, file);
    long n = prefix.getLong(0);
    // Unsigned: a value with the top bit set is a huge length, not a negative one.
    if (n < 0 || n > MAX_HEADER_BYTES) {
      throw bad(
          file,
          "the header length "
              + Long.toUnsignedString(n)
              + " is over the format's limit of "
              + MAX_HEADER_BYTES
              + " bytes; the file is probably not safetensors");
    }
    if (8 + n > size) {
      throw bad(
          file,
          "the header length "
              + n
              + " runs past the end of the file ("
              + size
              + " bytes); the file is truncated or not safetensors");
    }
    ByteBuffer headerBytes = ByteBuffer.allocate((int) n);
    readFully(ch, headerBytes, 8, file);
    String text;
    try {
      text =
          StandardCharsets.UTF_8
              .newDecoder()
              .onMalformedInput(CodingErrorAction.REPORT)
              .onUnmappableCharacter(CodingErrorAction.REPORT)
              .decode(headerBytes.flip())
              .toString();
    } catch (CharacterCodingException e) {
      throw bad(file, "the header is not valid UTF-8");
    }
    Map<String, String> metadata = new LinkedHashMap<>();
    List<Entry> entries = new ArrayList<>();
    try (JsonReader r = new JsonReader(new StringReader(text))) {
      r.setStrictness(Strictness.STRICT);
      if (r.peek() != JsonToken.BEGIN_OBJECT) {
        throw bad(file, "the header is not a JSON object");
      }
      r.beginObject();
      Set<String> seen = new HashSet<>();
      while (r.hasNext()) {
        String name = r.nextName();
        if (!seen.add(name)) {
          throw badTensor(
              file, name, "the name appears twice in the header; each key must be unique");
        }
        if (name.equals(METADATA_KEY)) {
          metadata = metadata(file, r);
        } else {
          entries.add(entry(file, name, r));
        }
      }
      r.endObject();
      if (r.peek() != JsonToken.END_DOCUMENT) {
        throw bad(file, "the header has more after its JSON object");
      }
    } catch (IOException | IllegalStateException | NumberFormatException e) {
      // Gson reports syntax errors as MalformedJsonException (an IOException) and wrong token
      // kinds as IllegalStateException; both carry the path and position.
      throw new FormatException(
          "Cannot read safetensors file " + file + ": the header is not valid JSON: " + e.getMessage(),
          e);
    }

    // Like the reference reader, accept any header order but require the data to be one
    // contiguous run with no gaps or overlaps.
    entries.sort(Comparator.comparingLong(Entry::begin).thenComparingLong(Entry::end));
    long dataStart = 8 + n;
    long dataSize = size - dataStart;
    long expected = 0;
    for (Entry en : entries) {
      if (en.begin() != expected) {
        throw badTensor(
            file,
            en.name(),
            "its data_offsets ["
                + en.begin()
                + ", "
                + en.end()
                + "] do not start where the previous tensor's data ends ("
                + expected
                + "); offsets must be contiguous from 0");
      }
      if (en.end() > dataSize) {
        throw badTensor(
            file,
            en.name(),
            "its data_offsets end at "
                + en.end()
                + ", past the end of the data section ("
                + dataSize
                + " bytes); the file is truncated");
      }
      expected = en.end();
    }
    if (expected != dataSize) {
      throw bad(
          file,
          "the tensors cover "
              + expected
              + " bytes of data but the data section is "
              + dataSize
              + " bytes; the file has trailing bytes or is truncated");
    }

    Map<String, Tensor> tensors = new LinkedHashMap<>();
    for (Entry en : entries) {
      long length = en.end() - en.begin();
      if (length > Integer.MAX_VALUE - 8) {
        throw badTensor(file, en.name(), "its data is " + length + " bytes, over 2 GiB");
      }
      ByteBuffer data = ByteBuffer.allocate((int) length).order(ByteOrder.LITTLE_ENDIAN);
      readFully(ch, data, dataStart + en.begin(), file);
      data.flip();
      tensors.put(en.name(), DenseTensor.ofRaw(en.name(), en.type(), en.dims(), data));
    }
    return new Contents(tensors, metadata);
  }

  private static Map<String, String> metadata(Path file, JsonReader r) throws IOException {
    if (r.peek() != JsonToken.BEGIN_OBJECT) {
      throw bad(file, "'" + METADATA_KEY + "' is not a JSON object of strings");
    }
    Map<String, String> out = new LinkedHashMap<>();
    r.beginObject();
    while (r.hasNext()) {
      String key = r.nextName();
      if (r.peek() != JsonToken.STRING) {
        throw bad(
            file,
            "metadata key '"
                + key
                + "' holds a "
                + r.peek()
                + ", not a string; safetensors metadata values must be strings");
      }
      if (out.put(key, r.nextString()) != null) {
        throw bad(file, "metadata key '" + key + "' appears twice");
      }
    }
    r.endObject();
    return out;
  }

  private static Entry entry(Path file, String name, JsonReader r) throws IOException {
    if (r.peek() != JsonToken.BEGIN_OBJECT) {
      throw badTensor(file, name, "its entry is not a JSON object");
    }
    String dtype = null;
    long[] dims = null;
    long[] offsets = null;
    r.beginObject();
    while (r.hasNext()) {
      String key = r.nextName();
      switch (key) {
        case "dtype" -> {
          if (r.peek() != JsonToken.STRING) {
            throw badTensor(file, name, "its \"dtype\" is not a string");
          }
          dtype = r.nextString();
        }
        case "shape" -> dims = longs(file, name, r, "shape", -1);
        case "data_offsets" -> offsets = longs(file, name, r, "data_offsets", 2);
        // Like the reference reader, ignore fields this version does not know.
        default -> r.skipValue();
      }
    }
    r.endObject();
    if (dtype == null) throw badTensor(file, name, "it has no \"dtype\"");
    if (dims == null) throw badTensor(file, name, "it has no \"shape\" array");
    if (offsets == null) throw badTensor(file, name, "it has no \"data_offsets\" array");
    DataType type = DTYPES.get(dtype);
    if (type == null) {
      throw badTensor(
          file, name, "its dtype \"" + dtype + "\" is not one Graft reads (" + DTYPES.keySet() + ")");
    }
    if (offsets[1] < offsets[0]) {
      throw badTensor(
          file,
          name,
          "its data_offsets [" + offsets[0] + ", " + offsets[1] + "] end before they begin");
    }
    long elements = 1;
    long bytes;
    try {
      for (long d : dims) elements = Math.multiplyExact(elements, d);
      bytes = Math.multiplyExact(elements, (long) type.bits() / 8);
    } catch (ArithmeticException e) {
      throw badTensor(file, name, "its shape " + Arrays.toString(dims) + " overflows");
    }
    if (bytes != offsets[1] - offsets[0]) {
      throw badTensor(
          file,
          name,
          "its shape "
              + Arrays.toString(dims)
              + " of "
              + dtype
              + " needs "
              + bytes
              + " bytes, but data_offsets ["
              + offsets[0]
              + ", "
              + offsets[1]
              + "] hold "
              + (offsets[1] - offsets[0]));
    }
    return new Entry(name, type, dims, offsets[0], offsets[1]);
  }

  /** A JSON array of non-negative integers, of length {@code arity} unless that is -1. */
  private static long[] longs(Path file, String name, JsonReader r, String field, int arity)
      throws IOException {
    if (r.peek() != JsonToken.BEGIN_ARRAY) {
      throw badTensor(file, name, "its \"" + field + "\" is not an array");
    }
    List<Long> values = new ArrayList<>();
    r.beginArray();
    while (r.hasNext()) {
      // nextLong would also take "5" (a string) and 5.0; the format has plain integers only.
      String text = r.peek() == JsonToken.NUMBER ? r.nextString() : null;
      long v = -1;
      if (text != null && text.chars().allMatch(Character::isDigit)) {
        try {
          v = Long.parseLong(text);
        } catch (NumberFormatException tooBig) {
          v = -1;
        }
      }
      if (v < 0) {
        throw badTensor(
            file,
            name,
            "its \"" + field + "\" holds " + (text != null ? text : r.peek()) + ", not a non-negative integer");
      }
      values.add(v);
    }
    r.endArray();
    if (arity >= 0 && values.size() != arity) {
      throw badTensor(
          file, name, "its \"" + field + "\" has " + values.size() + " entries, not " + arity);
    }
    return values.stream().mapToLong(Long::longValue).toArray();
  }

  private static void readFully(FileChannel ch, ByteBuffer b, long position, Path file)
      throws IOException {
    long p = position;
    while (b.hasRemaining()) {
      int r = ch.read(b, p);
      if (r < 0) throw bad(file, "it ended while reading at byte " + p + " (truncated)");
      p += r;
    }
  }

  private static FormatException bad(Path file, String what) {
    return new FormatException("Cannot read safetensors file " + file + ": " + what + ".");
  }

  private static FormatException badTensor(Path file, String tensor, String what) {
    return new FormatException(
        "Cannot read safetensors file " + file + ", tensor '" + tensor + "': " + what + ".");
  }
}
