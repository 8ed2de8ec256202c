package dev.graft.ir.io;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.graft.ir.DataType;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafeTensorsTest {
  @TempDir Path dir;

  // ---- helpers: files built and taken apart by hand, independent of SafeTensors --------------------

  private static DenseTensor raw(DataType t, long[] dims, int... bytes) {
    ByteBuffer b = ByteBuffer.allocate(bytes.length);
    for (int v : bytes) b.put((byte) v);
    return DenseTensor.ofRaw("ignored", t, dims, b.flip());
  }

  private static byte[] bytesOf(Tensor t) {
    ByteBuffer b = t.rawData().duplicate();
    byte[] out = new byte[b.remaining()];
    b.get(out);
    return out;
  }

  /** A file from a header text (padded here exactly as given) and data bytes. */
  private Path handMade(String name, String header, byte[] data) throws IOException {
    byte[] h = header.getBytes(StandardCharsets.UTF_8);
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    out.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(h.length).array());
    out.write(h);
    out.write(data);
    Path p = dir.resolve(name);
    Files.write(p, out.toByteArray());
    return p;
  }

  /** The header length, header text and data of a file, read with plain byte arithmetic. */
  private record Parts(long n, String header, byte[] data) {}

  private static Parts parts(Path p) throws IOException {
    byte[] all = Files.readAllBytes(p);
    long n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | (all[i] & 0xff);
    String header = new String(all, 8, (int) n, StandardCharsets.UTF_8);
    byte[] data = Arrays.copyOfRange(all, 8 + (int) n, all.length);
    return new Parts(n, header, data);
  }

  private static byte[] le(float... v) {
    ByteBuffer b = ByteBuffer.allocate(v.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (float f : v) b.putFloat(f);
    return b.array();
  }

  private static byte[] concat(byte[]... parts) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    for (byte[] p : parts) out.writeBytes(p);
    return out.toByteArray();
  }

  // ---- round trip ---------------------------------------------------------------------------------

  @Test
  void roundTripKeepsEveryDtypeShapeAndByte() {
    Map<String, Tensor> in = new LinkedHashMap<>();
    in.put("f32", DenseTensor.ofFloats("x", new long[] {2, 3}, 1f, -2f, 3.5f, Float.NaN, 0f, -0f));
    in.put("f64", DenseTensor.ofDoubles("x", new long[] {2}, Math.PI, -1e300));
    in.put("i64", DenseTensor.ofLongs("x", new long[] {3}, Long.MIN_VALUE, 0, Long.MAX_VALUE));
    in.put("i32", DenseTensor.ofInts("x", new long[] {1, 2}, -7, 1 << 30));
    in.put("bool", DenseTensor.ofBools("x", new long[] {3}, true, false, true));
    in.put("f16", raw(DataType.FLOAT16, new long[] {2}, 0x00, 0x3c, 0x00, 0xc0)); // 1.0, -2.0
    in.put("bf16", raw(DataType.BFLOAT16, new long[] {1}, 0x80, 0x3f)); // 1.0
    in.put("u8", raw(DataType.UINT8, new long[] {3}, 0, 128, 255));
    in.put("i8", raw(DataType.INT8, new long[] {1}, 0x80));
    in.put("i16", raw(DataType.INT16, new long[] {1}, 0xff, 0x7f));
    in.put("scalar", DenseTensor.scalar("x", 4.25f));
    in.put("empty", DenseTensor.ofFloats("x", new long[] {0, 5}));
    Map<String, String> meta = Map.of("format", "pt", "note", "quote \" backslash \\ é 日本");

    Path p = dir.resolve("all.safetensors");
    SafeTensors.write(p, in, meta);
    SafeTensors.Contents back = SafeTensors.read(p);

    assertThat(back.tensors().keySet()).containsExactlyInAnyOrderElementsOf(in.keySet());
    assertThat(back.metadata()).isEqualTo(meta);
    for (Map.Entry<String, Tensor> e : in.entrySet()) {
      Tensor got = back.tensors().get(e.getKey());
      assertThat(got).as(e.getKey()).isInstanceOf(DenseTensor.class);
      assertThat(got.name()).isEqualTo(e.getKey());
      assertThat(got.dataType()).as(e.getKey()).isEqualTo(e.getValue().dataType());
      assertThat(got.dims()).as(e.getKey()).isEqualTo(e.getValue().dims());
      assertThat(bytesOf(got)).as(e.getKey()).isEqualTo(bytesOf(e.getValue()));
    }
    assertThat(back.tensors().get("f32").toFloatArray()).containsExactly(1f, -2f, 3.5f, Float.NaN, 0f, -0f);
    assertThat(back.tensors().get("i64").toLongArray()).containsExactly(Long.MIN_VALUE, 0, Long.MAX_VALUE);
  }

  @Test
  void namesWithEscapesRoundTrip() {
    String name = "layer.0/\"q\"\\proj\n\t\u0001ü";
    Path p = dir.resolve("names.safetensors");
    SafeTensors.write(p, Map.of(name, DenseTensor.scalar("s", 1f)), Map.of());
    assertThat(SafeTensors.read(p).tensors()).containsOnlyKeys(name);
  }

  // ---- layout against the spec -------------------------------------------------------------------

  @Test
  void headerLayoutMatchesTheSpecByteForByte() throws IOException {
    // The reference implementation's own test vector: one F32 tensor "attn0" of shape
    // [1, 1, 2, 3] holding 0..5. Its header is 65 bytes of JSON plus 7 spaces: N = 72.
    Path p = dir.resolve("ref.safetensors");
    SafeTensors.write(
        p,
        Map.of("attn0", DenseTensor.ofFloats("t", new long[] {1, 1, 2, 3}, 0, 1, 2, 3, 4, 5)),
        Map.of());
    Parts parts = parts(p);
    String json = "{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}";
    assertThat(parts.n()).isEqualTo(72);
    assertThat(parts.header()).isEqualTo(json + " ".repeat(72 - json.length()));
    assertThat(parts.data()).isEqualTo(le(0, 1, 2, 3, 4, 5));
  }

  @Test
  void metadataComesFirstAndIsLeftOutWhenEmpty() throws IOException {
    // Reference vector: no tensors, metadata {"framework": "pt"}: 35 bytes + 5 spaces.
    Path p = dir.resolve("meta.safetensors");
    SafeTensors.write(p, Map.of(), Map.of("framework", "pt"));
    Parts parts = parts(p);
    assertThat(parts.n()).isEqualTo(40);
    assertThat(parts.header()).isEqualTo("{\"__metadata__\":{\"framework\":\"pt\"}}     ");
    assertThat(parts.data()).isEmpty();

    Path q = dir.resolve("empty.safetensors");
    SafeTensors.write(q, Map.of(), Map.of());
    assertThat(parts(q).header()).isEqualTo("{}      ");
  }

  @Test
  void dataIsOrderedByElementSizeThenNameSoEveryTensorIsAligned() throws IOException {
    Map<String, Tensor> in = new LinkedHashMap<>();
    in.put("a_u8", raw(DataType.UINT8, new long[] {3}, 1, 2, 3));
    in.put("z_f32", DenseTensor.ofFloats("t", new long[] {1}, 7f));
    in.put("b_f64", DenseTensor.ofDoubles("t", new long[] {1}, 2.0));
    in.put("c_f32", DenseTensor.ofFloats("t", new long[] {2}, 5f, 6f));
    Path p = dir.resolve("order.safetensors");
    SafeTensors.write(p, in, Map.of());
    Parts parts = parts(p);
    assertThat(parts.header().trim())
        .isEqualTo(
            "{\"b_f64\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]},"
                + "\"c_f32\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
                + "\"z_f32\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[16,20]},"
                + "\"a_u8\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[20,23]}}");
    assertThat(parts.n() % 8).isZero();
    ByteBuffer d = ByteBuffer.wrap(parts.data()).order(ByteOrder.LITTLE_ENDIAN);
    assertThat(d.getDouble(0)).isEqualTo(2.0);
    assertThat(d.getFloat(8)).isEqualTo(5f);
    assertThat(d.getFloat(12)).isEqualTo(6f);
    assertThat(d.getFloat(16)).isEqualTo(7f);
    assertThat(Arrays.copyOfRange(parts.data(), 20, 23)).containsExactly(1, 2, 3);
    assertThat(SafeTensors.read(p).tensors().keySet())
        .containsExactly("b_f64", "c_f32", "z_f32", "a_u8");
  }

  @Test
  void equalInputsGiveEqualBytes() throws IOException {
    Map<String, Tensor> one = new LinkedHashMap<>();
    one.put("b", DenseTensor.scalar("t", 1f));
    one.put("a", DenseTensor.scalar("t", 2f));
    Map<String, Tensor> other = new LinkedHashMap<>();
    other.put("a", DenseTensor.scalar("u", 2f));
    other.put("b", DenseTensor.scalar("u", 1f));
    Map<String, String> m1 = new LinkedHashMap<>();
    m1.put("y", "1");
    m1.put("x", "2");
    Path p = dir.resolve("1.safetensors");
    Path q = dir.resolve("2.safetensors");
    SafeTensors.write(p, one, m1);
    SafeTensors.write(q, other, Map.of("x", "2", "y", "1"));
    assertThat(Files.readAllBytes(p)).isEqualTo(Files.readAllBytes(q));
  }

  @Test
  void readerAcceptsAnyHeaderOrderAndReturnsFileOrder() throws IOException {
    // A header listing tensors out of data order, with spaces in the JSON, as other writers do.
    String header =
        "{ \"second\": {\"dtype\": \"I32\", \"shape\": [1], \"data_offsets\": [4, 8]},\n"
            + "  \"__metadata__\": {\"k\": \"v\"},\n"
            + "  \"first\": {\"dtype\": \"F32\", \"shape\": [], \"data_offsets\": [0, 4]} }";
    byte[] data = concat(le(1.5f), new byte[] {9, 0, 0, 0});
    Path p = handMade("order.safetensors", header, data);
    SafeTensors.Contents c = SafeTensors.read(p);
    assertThat(c.tensors().keySet()).containsExactly("first", "second");
    assertThat(c.tensors().get("first").toFloatArray()).containsExactly(1.5f);
    assertThat(c.tensors().get("first").dims()).isEmpty();
    assertThat(c.tensors().get("second").toLongArray()).containsExactly(9);
    assertThat(c.metadata()).containsExactly(Map.entry("k", "v"));
  }

  // ---- atomic write ------------------------------------------------------------------------------

  @Test
  void writeReplacesAtomicallyAndLeavesNoTemporaryFiles() throws IOException {
    Path p = dir.resolve("w.safetensors");
    SafeTensors.write(p, Map.of("a", DenseTensor.scalar("a", 1f)), Map.of());
    SafeTensors.write(p, Map.of("b", DenseTensor.scalar("b", 2f)), Map.of());
    assertThat(SafeTensors.read(p).tensors()).containsOnlyKeys("b");
    try (Stream<Path> s = Files.list(dir)) {
      assertThat(s.map(x -> x.getFileName().toString()).toList()).containsExactly("w.safetensors");
    }
  }

  @Test
  void refusedWriteLeavesTheOldFile() throws IOException {
    Path p = dir.resolve("keep.safetensors");
    SafeTensors.write(p, Map.of("a", DenseTensor.scalar("a", 1f)), Map.of());
    byte[] before = Files.readAllBytes(p);
    Tensor strings =
        new DenseTensor(
            "s",
            DataType.STRING,
            new long[] {1},
            new DenseTensor.Storage.Strings(List.of(new byte[] {1})),
            null,
            null);
    assertThatThrownBy(() -> SafeTensors.write(p, Map.of("s", strings), Map.of()))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("'s'")
        .hasMessageContaining("STRING")
        .hasMessageContaining("Convert it");
    assertThatThrownBy(
            () -> SafeTensors.write(p, Map.of("__metadata__", DenseTensor.scalar("m", 1f)), Map.of()))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("reserves");
    assertThat(Files.readAllBytes(p)).isEqualTo(before);
  }

  // ---- malformed files ----------------------------------------------------------------------------

  private Path valid() {
    Path p = dir.resolve("valid.safetensors");
    Map<String, Tensor> in = new LinkedHashMap<>();
    in.put("w", DenseTensor.ofFloats("w", new long[] {2, 2}, 1, 2, 3, 4));
    in.put("b", DenseTensor.ofFloats("b", new long[] {2}, 5, 6));
    SafeTensors.write(p, in, Map.of());
    return p;
  }

  @Test
  void truncatedDataNamesTheFileAndTheTensor() throws IOException {
    Path p = valid();
    byte[] all = Files.readAllBytes(p);
    Path cut = dir.resolve("cut.safetensors");
    Files.write(cut, Arrays.copyOf(all, all.length - 3));
    // Both are F32, so data order is by name: b (0..8) then w (8..24); cutting 3 bytes leaves
    // w short.
    assertThatThrownBy(() -> SafeTensors.read(cut))
        .isInstanceOf(SafeTensors.FormatException.class)
        .hasMessageContaining(cut.toString())
        .hasMessageContaining("tensor 'w'")
        .hasMessageContaining("truncated");
  }

  @Test
  void headerLengthPastTheEndOfTheFile() throws IOException {
    Path p = valid();
    byte[] all = Files.readAllBytes(p);
    Path cut = dir.resolve("short-header.safetensors");
    Files.write(cut, Arrays.copyOf(all, 20));
    assertThatThrownBy(() -> SafeTensors.read(cut))
        .isInstanceOf(SafeTensors.FormatException.class)
        .hasMessageContaining(cut.toString())
        .hasMessageContaining("past the end of the file");

    Path tiny = dir.resolve("tiny.safetensors");
    Files.write(tiny, new byte[] {1, 2, 3});
    assertThatThrownBy(() -> SafeTensors.read(tiny))
        .isInstanceOf(SafeTensors.FormatException.class)
        .hasMessageContaining("shorter than the 8-byte header length");

    Path huge = dir.resolve("huge.safetensors");
    Files.write(huge, new byte[] {0, 0, 0, 0, 0, 0, 0, (byte) 0x80, '{', '}'});
    assertThatThrownBy(() -> SafeTensors.read(huge))
        .isInstanceOf(SafeTensors.FormatException.class)
        .hasMessageContaining("9223372036854775808")
        .hasMessageContaining("not safetensors");
  }

  @Test
  void gapsOverlapsAndTrailingBytesAreRefused() throws IOException {
    Path gap =
        handMade(
            "gap.safetensors",
            "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
                + "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[3,5]}}",
            new byte[5]);
    assertThatThrownBy(() -> SafeTensors.read(gap))
        .isInstanceOf(SafeTensors.FormatException.class)
        .hasMessageContaining("tensor 'b'")
        .hasMessageContaining("contiguous");

    Path overlap =
        handMade(
            "overlap.safetensors",
            "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
                + "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[1,3]}}",
            new byte[3]);
    assertThatThrownBy(() -> SafeTensors.read(overlap))
        .isInstanceOf(SafeTensors.FormatException.class)
        .hasMessageContaining("tensor 'b'");

    Path backwards =
        handMade(
            "backwards.safetensors",
            "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[2,0]}}",
            new byte[2]);
    assertThatThrownBy(() -> SafeTensors.read(backwards))
        .isInstanceOf(SafeTensors.FormatException.class)
        .hasMessageContaining("tensor 'a'")
        .hasMessageContaining("end before they begin");

    Path trailing =
        handMade(
            "trailing.safetensors",
            "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}",
            new byte[4]);
    assertThatThrownBy(() -> SafeTensors.read(trailing))
        .isInstanceOf(SafeTensors.FormatException.class)
        .hasMessageContaining("trailing bytes");
  }

  @Test
  void shapeThatDisagreesWithTheOffsetsIsRefused() throws IOException {
    Path p =
        handMade(
            "shape.safetensors",
            "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,16]}}",
            new byte[16]);
    assertThatThrownBy(() -> SafeTensors.read(p))
        .isInstanceOf(SafeTensors.FormatException.class)
        .hasMessageContaining(p.toString())
        .hasMessageContaining("tensor 'w'")
        .hasMessageContaining("needs 24 bytes")
        .hasMessageContaining("hold 16");
  }

  @Test
  void unknownDtypeAndBadJsonAreRefused() throws IOException {
    Path dtype =
        handMade(
            "dtype.safetensors",
            "{\"w\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,1]}}",
            new byte[1]);
    assertThatThrownBy(() -> SafeTensors.read(dtype))
        .isInstanceOf(SafeTensors.FormatException.class)
        .hasMessageContaining("tensor 'w'")
        .hasMessageContaining("\"Q4\"");

    Path json = handMade("json.safetensors", "{\"w\":{\"dtype\":\"F32\",}", new byte[0]);
    assertThatThrownBy(() -> SafeTensors.read(json))
        .isInstanceOf(SafeTensors.FormatException.class)
        .hasMessageContaining(json.toString())
        .hasMessageContaining("not valid JSON");

    Path dup =
        handMade(
            "dup.safetensors",
            "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                + "\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
            new byte[2]);
    assertThatThrownBy(() -> SafeTensors.read(dup))
        .isInstanceOf(SafeTensors.FormatException.class)
        .hasMessageContaining("tensor 'w'")
        .hasMessageContaining("appears twice");

    Path meta = handMade("meta.safetensors", "{\"__metadata__\":{\"epoch\":3}}", new byte[0]);
    assertThatThrownBy(() -> SafeTensors.read(meta))
        .isInstanceOf(SafeTensors.FormatException.class)
        .hasMessageContaining("'epoch'")
        .hasMessageContaining("must be strings");

    Path notInt =
        handMade(
            "float-shape.safetensors",
            "{\"w\":{\"dtype\":\"U8\",\"shape\":[1.0],\"data_offsets\":[0,1]}}",
            new byte[1]);
    assertThatThrownBy(() -> SafeTensors.read(notInt))
        .isInstanceOf(SafeTensors.FormatException.class)
        .hasMessageContaining("tensor 'w'")
        .hasMessageContaining("not a non-negative integer");

    Path lenient = handMade("lenient.safetensors", "{w:{'dtype':'U8'}}", new byte[0]);
    assertThatThrownBy(() -> SafeTensors.read(lenient))
        .isInstanceOf(SafeTensors.FormatException.class)
        .hasMessageContaining("not valid JSON");
  }
}
