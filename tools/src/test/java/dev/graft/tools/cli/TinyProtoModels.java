package dev.graft.tools.cli;

import com.google.protobuf.ByteString;
import dev.graft.ir.io.proto.Onnx.GraphProto;
import dev.graft.ir.io.proto.Onnx.ModelProto;
import dev.graft.ir.io.proto.Onnx.NodeProto;
import dev.graft.ir.io.proto.Onnx.OperatorSetIdProto;
import dev.graft.ir.io.proto.Onnx.StringStringEntryProto;
import dev.graft.ir.io.proto.Onnx.TensorProto;
import dev.graft.ir.io.proto.Onnx.TensorShapeProto;
import dev.graft.ir.io.proto.Onnx.TypeProto;
import dev.graft.ir.io.proto.Onnx.ValueInfoProto;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Small models written with the generated protobuf classes, independently of Graft's writer:
 * {@code Y = MatMul(X, W)} with X float[2,4] and W float[4,3], W inline or in external data.
 */
final class TinyProtoModels {
  static final String WEIGHT = "W";

  private TinyProtoModels() {}

  /** W inline as raw data. */
  static ModelProto inline() {
    TensorProto w =
        weightHeader().setRawData(ByteString.copyFrom(weightBytes())).build();
    return model(w);
  }

  /** W's data in {@code location}, relative to the model's folder. */
  static ModelProto external(String location) {
    TensorProto w =
        weightHeader()
            .setDataLocation(TensorProto.DataLocation.EXTERNAL)
            .addExternalData(entry("location", location))
            .addExternalData(entry("offset", "0"))
            .addExternalData(entry("length", Integer.toString(weightBytes().length)))
            .build();
    return model(w);
  }

  /** The bytes of W: 12 little-endian floats 0.5, 1.0, ... */
  static byte[] weightBytes() {
    ByteBuffer b = ByteBuffer.allocate(12 * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < 12; i++) b.putFloat(0.5f * (i + 1));
    return b.array();
  }

  static Path write(ModelProto model, Path file) {
    try {
      Files.createDirectories(file.toAbsolutePath().getParent());
      Files.write(file, model.toByteArray());
      return file;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static TensorProto.Builder weightHeader() {
    return TensorProto.newBuilder()
        .setName(WEIGHT)
        .setDataType(TensorProto.DataType.FLOAT_VALUE)
        .addDims(4)
        .addDims(3);
  }

  private static ModelProto model(TensorProto w) {
    GraphProto g =
        GraphProto.newBuilder()
            .setName("tiny")
            .addInput(valueInfo("X", 2, 4))
            .addOutput(valueInfo("Y", 2, 3))
            .addInitializer(w)
            .addNode(
                NodeProto.newBuilder()
                    .setOpType("MatMul")
                    .setName("matmul")
                    .addInput("X")
                    .addInput(WEIGHT)
                    .addOutput("Y"))
            .build();
    return ModelProto.newBuilder()
        .setIrVersion(8)
        .setProducerName("graft-tools-test")
        .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("").setVersion(17))
        .setGraph(g)
        .build();
  }

  private static ValueInfoProto valueInfo(String name, long... dims) {
    TensorShapeProto.Builder shape = TensorShapeProto.newBuilder();
    for (long d : dims) shape.addDim(TensorShapeProto.Dimension.newBuilder().setDimValue(d));
    return ValueInfoProto.newBuilder()
        .setName(name)
        .setType(
            TypeProto.newBuilder()
                .setTensorType(
                    TypeProto.Tensor.newBuilder()
                        .setElemType(TensorProto.DataType.FLOAT_VALUE)
                        .setShape(shape)))
        .build();
  }

  private static StringStringEntryProto entry(String k, String v) {
    return StringStringEntryProto.newBuilder().setKey(k).setValue(v).build();
  }
}
