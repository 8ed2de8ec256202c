package dev.graft.export;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtLoraAdapter;
import ai.onnxruntime.OrtSession;
import dev.graft.ir.DataType;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The adapter files against the real ONNX Runtime: a base graph {@code y = x·W + (x·A)·B} whose
 * LoRA factors A and B are graph inputs, one session, two adapters. The oracle for an adapter's
 * output is the same model run with that adapter's A and B fed as ordinary inputs.
 */
class OnnxAdapterFileTest {
  private static final OrtEnvironment ENV = OrtEnvironment.getEnvironment();
  private static final int IN = 4;
  private static final int OUT = 3;
  private static final int RANK = 2;
  private static final int BATCH = 2;

  private static final float[] X = randoms(BATCH * IN, 1);
  private static final float[] W = randoms(IN * OUT, 2);

  @TempDir Path dir;

  private static OrtSession.SessionOptions options;

  @BeforeAll
  static void setUp() throws OrtException {
    options = new OrtSession.SessionOptions();
  }

  @AfterAll
  static void tearDown() {
    options.close();
  }

  // ---- the model and its inputs --------------------------------------------------------------------

  private static float[] randoms(int n, long seed) {
    SplittableRandom r = new SplittableRandom(seed);
    float[] out = new float[n];
    for (int i = 0; i < n; i++) out[i] = (float) r.nextGaussian();
    return out;
  }

  /**
   * {@code y = x·W + (x·A)·B} with A {@code [IN, RANK]} and B {@code [RANK, OUT]} as graph inputs;
   * with {@code defaults}, A and B are also initializers (A random, B zero), so that a run with
   * no adapter gives the base model.
   */
  private static Model loraModel(boolean defaults) {
    GraphBuilder b = GraphBuilder.create("lora_base");
    Value x = b.input("x", DataType.FLOAT, "batch", (long) IN);
    Value a = b.input("lora_A", DataType.FLOAT, (long) IN, (long) RANK);
    Value bb = b.input("lora_B", DataType.FLOAT, (long) RANK, (long) OUT);
    if (defaults) {
      b.graph().addInitializer("lora_A", DenseTensor.ofFloats("lora_A", new long[] {IN, RANK}, randoms(IN * RANK, 9)));
      b.graph().addInitializer("lora_B", DenseTensor.ofFloats("lora_B", new long[] {RANK, OUT}, new float[RANK * OUT]));
    }
    Value w = b.initializer("W", DenseTensor.ofFloats("W", new long[] {IN, OUT}, W));
    b.prefix("/fc");
    Value base = b.op("MatMul", x, w);
    b.prefix("/fc/lora");
    Value delta = b.op("MatMul", b.op("MatMul", x, a), bb);
    b.prefix("/fc");
    Value y = b.op("Add", base, delta);
    b.output("y", y);
    b.typed(y, DataType.FLOAT, "batch", (long) OUT);
    return b.model(17);
  }

  private record Lora(float[] a, float[] b) {
    Map<String, Tensor> parameters() {
      Map<String, Tensor> m = new LinkedHashMap<>();
      m.put("lora_A", DenseTensor.ofFloats("A", new long[] {IN, RANK}, a));
      m.put("lora_B", DenseTensor.ofFloats("B", new long[] {RANK, OUT}, b));
      return m;
    }
  }

  private static final Lora FIRST = new Lora(randoms(IN * RANK, 11), randoms(RANK * OUT, 12));
  private static final Lora SECOND = new Lora(randoms(IN * RANK, 21), randoms(RANK * OUT, 22));

  private static OnnxTensor tensor(float[] data, long... shape) throws OrtException {
    return OnnxTensor.createTensor(ENV, FloatBuffer.wrap(data), shape);
  }

  private static float[] y(OrtSession.Result r) throws OrtException {
    FloatBuffer fb = ((OnnxTensor) r.get("y").orElseThrow()).getFloatBuffer();
    float[] out = new float[fb.remaining()];
    fb.get(out);
    return out;
  }

  /** Runs with x alone and {@code adapter} active (none when null). */
  private static float[] runWith(OrtSession s, OrtLoraAdapter adapter) throws OrtException {
    try (OnnxTensor x = tensor(X, BATCH, IN);
        OrtSession.RunOptions ro = new OrtSession.RunOptions()) {
      if (adapter != null) ro.addActiveLoraAdapter(adapter);
      try (OrtSession.Result r = s.run(Map.of("x", x), ro)) {
        return y(r);
      }
    }
  }

  /** The oracle: the plain-input model, with A and B fed as ordinary inputs. */
  private static float[] fedDirectly(float[] a, float[] b) throws OrtException {
    try (OrtSession s = ENV.createSession(ModelIO.toBytes(loraModel(false)), options);
        OnnxTensor x = tensor(X, BATCH, IN);
        OnnxTensor ta = tensor(a, IN, RANK);
        OnnxTensor tb = tensor(b, RANK, OUT);
        OrtSession.Result r = s.run(Map.of("x", x, "lora_A", ta, "lora_B", tb))) {
      return y(r);
    }
  }

  private static float maxAbsDiff(float[] p, float[] q) {
    float m = 0;
    for (int i = 0; i < p.length; i++) m = Math.max(m, Math.abs(p[i] - q[i]));
    return m;
  }

  // ---- ORT proof ----------------------------------------------------------------------------------

  @Test
  void oneSessionServesTwoAdaptersAndSwitchesBetweenThem() throws Exception {
    Path first = dir.resolve("first" + OnnxAdapterFile.EXTENSION);
    OnnxAdapterFile.write(first, FIRST.parameters(), 1, 7);
    byte[] second = OnnxAdapterFile.toBytes(SECOND.parameters(), 2, 7);

    float[] expectFirst = fedDirectly(FIRST.a(), FIRST.b());
    float[] expectSecond = fedDirectly(SECOND.a(), SECOND.b());
    float[] base = fedDirectly(FIRST.a(), new float[RANK * OUT]);
    // The two adapters must differ from each other and from the base by far more than the
    // tolerance, or the test could not tell them apart.
    assertThat(maxAbsDiff(expectFirst, expectSecond)).isGreaterThan(0.1f);
    assertThat(maxAbsDiff(expectFirst, base)).isGreaterThan(0.1f);
    assertThat(maxAbsDiff(expectSecond, base)).isGreaterThan(0.1f);

    try (OrtSession session = ENV.createSession(ModelIO.toBytes(loraModel(false)), options);
        OrtLoraAdapter a1 = OrtLoraAdapter.create(first.toString());
        OrtLoraAdapter a2 = OrtLoraAdapter.create(second)) {
      List<float[]> got = new ArrayList<>();
      for (OrtLoraAdapter a : List.of(a1, a2, a1, a2)) got.add(runWith(session, a));
      for (int i = 0; i < got.size(); i++) {
        float[] expected = i % 2 == 0 ? expectFirst : expectSecond;
        assertThat(got.get(i)).as("run %s", i).containsExactly(expected, within(1e-6f));
      }
    }
  }

  @Test
  void withOverridableInitializersTheBareSessionIsTheBaseModel() throws Exception {
    byte[] first = OnnxAdapterFile.toBytes(FIRST.parameters(), 1, 1);
    float[] defaultA = randoms(IN * RANK, 9);
    float[] base = fedDirectly(defaultA, new float[RANK * OUT]);
    float[] expectFirst = fedDirectly(FIRST.a(), FIRST.b());
    assertThat(maxAbsDiff(expectFirst, base)).isGreaterThan(0.1f);

    try (OrtSession session = ENV.createSession(ModelIO.toBytes(loraModel(true)), options);
        OrtLoraAdapter a1 = OrtLoraAdapter.create(first)) {
      assertThat(runWith(session, null)).containsExactly(base, within(1e-6f));
      assertThat(runWith(session, a1)).containsExactly(expectFirst, within(1e-6f));
      assertThat(runWith(session, null)).containsExactly(base, within(1e-6f));
    }
  }

  @Test
  void ortRejectsAnAdapterWhoseShapeDoesNotFitTheInput() throws Exception {
    // The adapter carries its own dims; a mismatch with the model is ORT's to catch at Run.
    Map<String, Tensor> wrong = new LinkedHashMap<>(FIRST.parameters());
    wrong.put("lora_A", DenseTensor.ofFloats("A", new long[] {RANK, IN}, FIRST.a()));
    try (OrtSession session = ENV.createSession(ModelIO.toBytes(loraModel(false)), options);
        OrtLoraAdapter bad = OrtLoraAdapter.create(OnnxAdapterFile.toBytes(wrong, 1, 1))) {
      assertThatThrownBy(() -> runWith(session, bad)).isInstanceOf(OrtException.class);
    }
  }

  // ---- layout, read back by hand ---------------------------------------------------------------------

  /** Minimal FlatBuffers reading, written from the format's spec, independent of the builder. */
  private record Buf(ByteBuffer bb) {
    static Buf of(byte[] bytes) {
      return new Buf(ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN));
    }

    int u32(int at) {
      return bb.getInt(at);
    }

    /** Position of field {@code slot} of the table at {@code table}, or -1 when absent. */
    int field(int table, int slot) {
      int vtable = table - bb.getInt(table);
      int vtSize = Short.toUnsignedInt(bb.getShort(vtable));
      int at = 4 + 2 * slot;
      if (at >= vtSize) return -1;
      int off = Short.toUnsignedInt(bb.getShort(vtable + at));
      return off == 0 ? -1 : table + off;
    }

    /** Follows the uoffset stored in field {@code slot}. */
    int ref(int table, int slot) {
      int f = field(table, slot);
      assertThat(f).as("field %s present", slot).isPositive();
      return f + bb.getInt(f);
    }

    String string(int at) {
      int n = bb.getInt(at);
      byte[] b = new byte[n];
      bb.get(at + 4, b);
      assertThat(bb.get(at + 4 + n)).as("string is zero-terminated").isZero();
      return new String(b, StandardCharsets.UTF_8);
    }
  }

  @Test
  void layoutFollowsTheSchema() {
    Map<String, Tensor> params = new LinkedHashMap<>();
    params.put("z.lora_B", DenseTensor.ofFloats("t", new long[] {1, 3}, 1f, 2f, 3f));
    params.put("a.lora_A", raw3Bytes());
    params.put("single", DenseTensor.ofLongs("s", new long[] {1}, 5L));
    byte[] bytes = OnnxAdapterFile.toBytes(params, 42, 7);
    Buf f = Buf.of(bytes);

    assertThat(new String(bytes, 4, 4, StandardCharsets.US_ASCII)).isEqualTo("TORT");
    int root = f.u32(0);
    int fv = f.field(root, 0);
    assertThat(f.u32(fv)).as("format_version").isEqualTo(1);
    assertThat(f.u32(f.field(root, 1))).as("adapter_version").isEqualTo(42);
    assertThat(f.u32(f.field(root, 2))).as("model_version").isEqualTo(7);

    int vec = f.ref(root, 3);
    assertThat(f.u32(vec)).as("parameter count").isEqualTo(3);
    List<String> names = new ArrayList<>();
    for (int i = 0; i < 3; i++) {
      int slot = vec + 4 + 4 * i;
      int p = slot + f.u32(slot);
      String name = f.string(f.ref(p, 0));
      names.add(name);
      int dims = f.ref(p, 1);
      int type = f.u32(f.field(p, 2));
      int raw = f.ref(p, 3);
      int rawLength = f.u32(raw);
      assertThat((raw + 4) % 8).as("%s raw_data is 8-byte aligned", name).isZero();
      Tensor t = params.get(name);
      assertThat(type).as(name).isEqualTo(t.dataType().code());
      long[] d = new long[f.u32(dims)];
      for (int k = 0; k < d.length; k++) d[k] = f.bb().getLong(dims + 4 + 8 * k);
      assertThat(d).as(name).isEqualTo(t.dims());
      byte[] data = new byte[rawLength];
      f.bb().get(raw + 4, data);
      ByteBuffer expected = t.rawData().duplicate();
      byte[] e = new byte[expected.remaining()];
      expected.get(e);
      assertThat(data).as(name).isEqualTo(e);
    }
    assertThat(names).containsExactly("a.lora_A", "single", "z.lora_B");
    assertThat(OnnxAdapterFile.toBytes(params, 42, 7)).isEqualTo(bytes);
  }

  @Test
  void readGivesBackEveryParameterAsWritten() throws Exception {
    // The reader (for runtimes without the adapter API) against the schema-checked writer above,
    // on the same layout cases: odd sizes, empty, int64, float.
    Map<String, Tensor> params = new LinkedHashMap<>();
    params.put("z.lora_B", DenseTensor.ofFloats("t", new long[] {1, 3}, 1f, 2f, 3f));
    params.put("a.lora_A", raw3Bytes());
    params.put("empty", DenseTensor.ofFloats("e", new long[] {0, 4}));
    params.put("single", DenseTensor.ofLongs("s", new long[] {1}, 5L));
    Path p = dir.resolve("r" + OnnxAdapterFile.EXTENSION);
    OnnxAdapterFile.write(p, params, 3, 4);

    Map<String, Tensor> back = OnnxAdapterFile.read(p);

    assertThat(back.keySet()).containsExactly("a.lora_A", "empty", "single", "z.lora_B");
    for (Map.Entry<String, Tensor> e : params.entrySet()) {
      Tensor t = back.get(e.getKey());
      assertThat(t.dataType()).as(e.getKey()).isEqualTo(e.getValue().dataType());
      assertThat(t.dims()).as(e.getKey()).isEqualTo(e.getValue().dims());
      assertThat(t.rawData()).as(e.getKey()).isEqualTo(e.getValue().rawData());
    }
  }

  @Test
  void readRefusesWhatIsNoAdapterOrIsCut() throws Exception {
    byte[] bytes = OnnxAdapterFile.toBytes(FIRST.parameters(), 1, 1);
    Path cut = dir.resolve("cut" + OnnxAdapterFile.EXTENSION);
    Files.write(cut, java.util.Arrays.copyOf(bytes, bytes.length / 2));
    Path other = dir.resolve("other" + OnnxAdapterFile.EXTENSION);
    byte[] renamed = bytes.clone();
    renamed[4] = 'X';
    Files.write(other, renamed);

    assertThatThrownBy(() -> OnnxAdapterFile.read(other))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("is not an ONNX Runtime adapter: it lacks the file identifier \"TORT\"");
    assertThatThrownBy(() -> OnnxAdapterFile.read(cut))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("is truncated or not an ONNX Runtime adapter");
  }

  private static Tensor raw3Bytes() {
    return DenseTensor.ofRaw(
        "u", DataType.UINT8, new long[] {3}, ByteBuffer.wrap(new byte[] {1, 2, 3}));
  }

  @Test
  void ortLoadsEveryLayoutCaseItChecks() throws Exception {
    // Odd-sized and empty tensors between aligned ones: ORT's FlatBuffers verifier and loader
    // accept them.
    Map<String, Tensor> params = new LinkedHashMap<>();
    params.put("u8", raw3Bytes());
    params.put("empty", DenseTensor.ofFloats("e", new long[] {0, 4}));
    params.put("i64", DenseTensor.ofLongs("s", new long[] {1}, 5L));
    params.put("f", DenseTensor.ofFloats("f", new long[] {2}, 1f, 2f));
    try (OrtLoraAdapter a = OrtLoraAdapter.create(OnnxAdapterFile.toBytes(params, 0, 0))) {
      assertThat(a).isNotNull();
    }
    byte[] notAnAdapter = OnnxAdapterFile.toBytes(params, 0, 0);
    notAnAdapter[4] = 'X';
    assertThatThrownBy(() -> OrtLoraAdapter.create(notAnAdapter)).isInstanceOf(OrtException.class);
  }

  // ---- refusals and the atomic write ------------------------------------------------------------------

  @Test
  void refusesWhatTheFormatCannotHold() {
    Tensor strings =
        new DenseTensor(
            "s",
            DataType.STRING,
            new long[] {1},
            new DenseTensor.Storage.Strings(List.of(new byte[] {1})),
            null,
            null);
    assertThatThrownBy(() -> OnnxAdapterFile.toBytes(Map.of("s", strings), 1, 1))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("'s'")
        .hasMessageContaining("STRING")
        .hasMessageContaining("Convert it");
    Tensor int4 =
        DenseTensor.ofRaw("q", DataType.INT4, new long[] {2}, ByteBuffer.wrap(new byte[] {0x12}));
    assertThatThrownBy(() -> OnnxAdapterFile.toBytes(Map.of("q", int4), 1, 1))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("INT4");
    assertThatThrownBy(() -> OnnxAdapterFile.toBytes(Map.of("s", DenseTensor.scalar("s", 1f)), 1, 1))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("'s' is a scalar")
        .hasMessageContaining("shape [1]");
    assertThatThrownBy(() -> OnnxAdapterFile.toBytes(Map.of(), 1, 1))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("at least one parameter");
  }

  @Test
  void writeReplacesTheFileAndLeavesNoTemporaryFile() throws Exception {
    Path p = dir.resolve("a" + OnnxAdapterFile.EXTENSION);
    OnnxAdapterFile.write(p, FIRST.parameters(), 1, 1);
    OnnxAdapterFile.write(p, SECOND.parameters(), 2, 1);
    assertThat(Files.readAllBytes(p)).isEqualTo(OnnxAdapterFile.toBytes(SECOND.parameters(), 2, 1));
    try (Stream<Path> s = Files.list(dir)) {
      assertThat(s.map(x -> x.getFileName().toString()).toList())
          .containsExactly("a" + OnnxAdapterFile.EXTENSION);
    }
  }
}
