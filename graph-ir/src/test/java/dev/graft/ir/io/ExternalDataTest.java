package dev.graft.ir.io;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import dev.graft.ir.DataType;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.io.proto.Onnx;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.ExternalDataException;
import dev.graft.ir.tensor.ExternalTensor;
import dev.graft.ir.tensor.Tensor;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ExternalDataTest {
  @TempDir Path dir;

  /** y = x + w with a 4-float initializer w. */
  private static Model addModel(float... w) {
    Graph g = new Graph("g");
    Value x = g.addInput("x", Type.tensor(DataType.FLOAT, w.length));
    Value wv = g.addInitializer("w", DenseTensor.ofFloats("w", new long[] {w.length}, w));
    Node add = g.addNode(new Node("", "Add", List.of(x, wv), List.of("y"), List.of(), "add"));
    g.addOutput(add.output());
    Model m = new Model(g);
    m.setIrVersion(8L);
    m.setOpset("", 17);
    return m;
  }

  /** A model proto whose initializer 'w' points at {@code location}. */
  private static byte[] externalProto(String location, long offset, long length) {
    Onnx.TensorProto w =
        Onnx.TensorProto.newBuilder()
            .setName("w")
            .setDataType(DataType.FLOAT.code())
            .addDims(4)
            .setDataLocation(Onnx.TensorProto.DataLocation.EXTERNAL)
            .addExternalData(kv("location", location))
            .addExternalData(kv("offset", Long.toString(offset)))
            .addExternalData(kv("length", Long.toString(length)))
            .build();
    return Onnx.ModelProto.newBuilder()
        .setIrVersion(8)
        .addOpsetImport(Onnx.OperatorSetIdProto.newBuilder().setDomain("").setVersion(17))
        .setGraph(
            Onnx.GraphProto.newBuilder()
                .setName("g")
                .addInitializer(w)
                .addNode(
                    Onnx.NodeProto.newBuilder().setOpType("Identity").addInput("w").addOutput("y"))
                .addOutput(Onnx.ValueInfoProto.newBuilder().setName("y")))
        .build()
        .toByteArray();
  }

  private static Onnx.StringStringEntryProto kv(String k, String v) {
    return Onnx.StringStringEntryProto.newBuilder().setKey(k).setValue(v).build();
  }

  @Test
  void savesLargeTensorsToADataFileAndReadsThemBackLazily() throws Exception {
    Model m = addModel(1, 2, 3, 4);
    Path file = dir.resolve("m.onnx");
    ModelIO.save(m, file, SaveOptions.external(8));
    assertThat(dir.resolve("m.onnx.data")).exists();

    Model back = ModelIO.load(file);
    Tensor w = back.graph().initializer("w").orElseThrow().initializer().orElseThrow();
    assertThat(w).isInstanceOf(ExternalTensor.class);
    assertThat(((ExternalTensor) w).isMapped()).as("reading shape and type does no I/O").isFalse();
    assertThat(w.dims()).containsExactly(4);
    assertThat(((ExternalTensor) w).isMapped()).isFalse();
    assertThat(w.toFloatArray()).containsExactly(1, 2, 3, 4);
    assertThat(((ExternalTensor) w).isMapped()).isTrue();
  }

  @Test
  void refusesLocationsThatLeaveTheModelFolder() throws Exception {
    Path sub = Files.createDirectories(dir.resolve("model"));
    Files.write(dir.resolve("secret.bin"), new byte[16]);
    for (String bad : List.of("../secret.bin", "a/../../secret.bin", dir.resolve("secret.bin").toString())) {
      Files.write(sub.resolve("m.onnx"), externalProto(bad, 0, 16));
      assertThatThrownBy(() -> ModelIO.load(sub.resolve("m.onnx")))
          .as(bad)
          .isInstanceOf(ExternalDataException.class)
          .hasMessageContaining("'w'")
          .hasMessageContaining(bad);
    }
  }

  @Test
  void refusesALinkThatLeadsOutOfTheFolder() throws Exception {
    Path sub = Files.createDirectories(dir.resolve("model"));
    Files.write(dir.resolve("secret.bin"), new byte[16]);
    Files.createSymbolicLink(sub.resolve("weights.bin"), dir.resolve("secret.bin"));
    Files.write(sub.resolve("m.onnx"), externalProto("weights.bin", 0, 16));
    assertThatThrownBy(() -> ModelIO.load(sub.resolve("m.onnx")))
        .isInstanceOf(ExternalDataException.class)
        .hasMessageContaining("link")
        .hasMessageContaining("out of the model's folder");
  }

  @Test
  void missingOrTruncatedDataFilesSayWhichTensorAndFile() throws Exception {
    Files.write(dir.resolve("m.onnx"), externalProto("weights.bin", 0, 16));
    Model m = ModelIO.load(dir.resolve("m.onnx"));
    Tensor w = m.graph().initializer("w").orElseThrow().initializer().orElseThrow();
    assertThatThrownBy(w::rawData)
        .isInstanceOf(ExternalDataException.class)
        .hasMessageContaining("'w'")
        .hasMessageContaining("weights.bin")
        .hasMessageContaining("not found");

    Files.write(dir.resolve("weights.bin"), new byte[8]);
    Model m2 = ModelIO.load(dir.resolve("m.onnx"));
    Tensor w2 = m2.graph().initializer("w").orElseThrow().initializer().orElseThrow();
    assertThatThrownBy(w2::rawData)
        .isInstanceOf(ExternalDataException.class)
        .hasMessageContaining("truncated");
  }

  @Test
  void readsTensorsPastTheTwoGibibyteMarkOfADataFile() throws Exception {
    long offset = (1L << 31) + 4096; // past what an int offset can address
    Path data = dir.resolve("big.bin");
    try (RandomAccessFile f = new RandomAccessFile(data.toFile(), "rw")) {
      f.setLength(offset + 16); // sparse: costs no disk
      f.seek(offset);
      ByteBuffer b = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN);
      b.asFloatBuffer().put(new float[] {5, 6, 7, 8});
      f.write(b.array());
    }
    Files.write(dir.resolve("m.onnx"), externalProto("big.bin", offset, 16));
    Model m = ModelIO.load(dir.resolve("m.onnx"));
    Tensor w = m.graph().initializer("w").orElseThrow().initializer().orElseThrow();
    assertThat(w.toFloatArray()).containsExactly(5, 6, 7, 8);
  }

  @Test
  void aModelPastProtobufsTwoGibibyteLimitIsNeverWrittenInline() throws Exception {
    // Two 1 GiB tensors in a sparse data file: nothing is read, only sizes are summed.
    long gib = 1L << 30;
    Path data = dir.resolve("big.bin");
    try (RandomAccessFile f = new RandomAccessFile(data.toFile(), "rw")) {
      f.setLength(2 * gib);
    }
    Graph g = new Graph("g");
    for (int i = 0; i < 2; i++) {
      String name = "w" + i;
      Value w =
          g.addInitializer(
              name,
              new ExternalTensor(name, DataType.FLOAT, new long[] {gib / 4}, dir, "big.bin",
                  i * gib, gib, List.of(), null, null));
      Node id = g.addNode(new Node("", "Identity", List.of(w), List.of("y" + i), List.of(), "id" + i));
      g.addOutput(id.output());
    }
    Model m = new Model(g);
    m.setIrVersion(8L);
    m.setOpset("", 17);
    Path out = dir.resolve("big.onnx");
    assertThatThrownBy(() -> ModelIO.save(m, out, SaveOptions.inline()))
        .isInstanceOf(OnnxFormatException.class)
        .hasMessageContaining("2 GiB")
        .hasMessageContaining("external data");
    assertThat(out).doesNotExist();
  }

  @Test
  void savingOverTheDataFileThatTensorsReadKeepsTheirData() throws Exception {
    Path file = dir.resolve("m.onnx");
    ModelIO.save(addModel(1, 2, 3, 4), file, SaveOptions.external(8));
    Model loaded = ModelIO.load(file);
    Value w = loaded.graph().initializer("w").orElseThrow();
    // Change another tensor so the new data file differs, then save over the original files.
    loaded.graph().addInitializer("z", DenseTensor.ofFloats("z", new long[] {8}, new float[8]));
    ModelIO.save(loaded, file, SaveOptions.external(8));
    assertThat(w.initializer().orElseThrow().toFloatArray()).containsExactly(1, 2, 3, 4);
    Model again = ModelIO.load(file);
    assertThat(again.graph().initializer("w").orElseThrow().initializer().orElseThrow().toFloatArray())
        .containsExactly(1, 2, 3, 4);
  }

  @Test
  void aFailedSaveLeavesTheExistingFileUntouched() throws Exception {
    Path file = dir.resolve("m.onnx");
    ModelIO.save(addModel(1, 2, 3, 4), file);
    byte[] before = Files.readAllBytes(file);
    Files.write(dir.resolve("w.onnx"), externalProto("missing.bin", 0, 16));
    Model broken = ModelIO.load(dir.resolve("w.onnx")); // its data file does not exist
    assertThatThrownBy(() -> ModelIO.save(broken, file, SaveOptions.inline()))
        .isInstanceOf(ExternalDataException.class);
    assertThat(Files.readAllBytes(file)).isEqualTo(before);
    try (var s = Files.list(dir)) {
      assertThat(s.map(p -> p.getFileName().toString())).noneMatch(n -> n.endsWith(".tmp"));
    }
  }

  @Test
  void badFilesGiveOneClearMessage() throws Exception {
    Path text = Files.writeString(dir.resolve("notes.onnx"), "this is not a model\n");
    assertThatThrownBy(() -> ModelIO.load(text))
        .isInstanceOf(OnnxFormatException.class)
        .hasMessageContaining("notes.onnx");

    byte[] good = ModelIO.toBytes(addModel(1, 2, 3, 4));
    Path truncated = dir.resolve("truncated.onnx");
    Files.write(truncated, java.util.Arrays.copyOf(good, good.length / 2));
    assertThatThrownBy(() -> ModelIO.load(truncated))
        .isInstanceOf(OnnxFormatException.class)
        .hasMessageContaining("truncated");

    assertThatThrownBy(() -> ModelIO.load(dir.resolve("absent.onnx")))
        .isInstanceOf(OnnxFormatException.class)
        .hasMessageContaining("does not exist");
  }

  @Test
  void typedDataListsKeepTheirFormAndReadAsRawBytes() throws Exception {
    Onnx.TensorProto typed =
        Onnx.TensorProto.newBuilder()
            .setName("w")
            .setDataType(DataType.FLOAT.code())
            .addDims(2)
            .addFloatData(1.5f)
            .addFloatData(-2f)
            .build();
    byte[] bytes =
        Onnx.ModelProto.newBuilder()
            .setIrVersion(8)
            .addOpsetImport(Onnx.OperatorSetIdProto.newBuilder().setDomain("").setVersion(17))
            .setGraph(
                Onnx.GraphProto.newBuilder()
                    .addInitializer(typed)
                    .addNode(Onnx.NodeProto.newBuilder().setOpType("Identity").addInput("w").addOutput("y"))
                    .addOutput(Onnx.ValueInfoProto.newBuilder().setName("y")))
            .build()
            .toByteArray();
    Model m = ModelIO.fromBytes(bytes, dir);
    assertThat(m.graph().initializer("w").orElseThrow().initializer().orElseThrow().toFloatArray())
        .containsExactly(1.5f, -2f);
    Onnx.ModelProto again = Onnx.ModelProto.parseFrom(ModelIO.toBytes(m));
    assertThat(again.getGraph().getInitializer(0).getFloatDataList()).containsExactly(1.5f, -2f);
    assertThat(again.getGraph().getInitializer(0).getRawData()).isEqualTo(ByteString.EMPTY);
  }
}
