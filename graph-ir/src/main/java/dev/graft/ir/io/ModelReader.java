package dev.graft.ir.io;

import com.google.protobuf.CodedInputStream;
import com.google.protobuf.InvalidProtocolBufferException;
import dev.graft.ir.Attr;
import dev.graft.ir.AttrType;
import dev.graft.ir.DataType;
import dev.graft.ir.Dim;
import dev.graft.ir.Function;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Shape;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.io.proto.Onnx;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.DenseTensor.Storage;
import dev.graft.ir.tensor.ExternalTensor;
import dev.graft.ir.tensor.Tensor;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.AbstractMap;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Protobuf to IR. Whatever the IR does not model is kept as each object's opaque {@code extras}:
 * the message with the modelled fields cleared, serialized. Node inputs are wired only after
 * every graph (subgraphs included) has all its nodes, so graphs that are not topologically
 * sorted, and subgraphs that capture values produced later in the outer graph, load too.
 */
final class ModelReader {
  private final Path baseDir;
  private final String origin;
  private final List<Runnable> wiring = new ArrayList<>();

  ModelReader(Path baseDir, String origin) {
    this.baseDir = baseDir;
    this.origin = origin;
  }

  static Model read(Path path) {
    if (!Files.exists(path)) {
      throw new OnnxFormatException("Model file " + path + " does not exist.");
    }
    if (Files.isDirectory(path)) {
      throw new OnnxFormatException(
          "Model path " + path + " is a folder; give the .onnx file inside it.");
    }
    Onnx.ModelProto proto;
    try (InputStream in = Files.newInputStream(path)) {
      proto = parse(in, path.toString());
    } catch (NoSuchFileException e) {
      throw new OnnxFormatException("Model file " + path + " does not exist.");
    } catch (IOException e) {
      throw new OnnxFormatException("Cannot read model file " + path + ": " + e.getMessage(), e);
    }
    Path dir = path.toAbsolutePath().getParent();
    return fromProto(proto, dir, path.toString());
  }

  static Model read(byte[] bytes, Path baseDir, String origin) {
    try {
      return fromProto(parse(new java.io.ByteArrayInputStream(bytes), origin), baseDir, origin);
    } catch (IOException e) {
      throw new OnnxFormatException("Cannot read " + origin + ": " + e.getMessage(), e);
    }
  }

  static Onnx.ModelProto parse(InputStream in, String origin) throws IOException {
    CodedInputStream cis = CodedInputStream.newInstance(in);
    cis.setSizeLimit(Integer.MAX_VALUE);
    cis.setRecursionLimit(1000);
    Onnx.ModelProto proto;
    try {
      proto = Onnx.ModelProto.parseFrom(cis);
    } catch (InvalidProtocolBufferException e) {
      throw new OnnxFormatException(
          origin
              + " is not a valid ONNX model (protobuf parse failed: "
              + e.getMessage()
              + "). The file may be truncated, or not an .onnx file at all.",
          e);
    }
    if (!proto.hasGraph() || !proto.hasIrVersion()) {
      throw new OnnxFormatException(
          origin
              + " is not an ONNX model: it has no "
              + (proto.hasGraph() ? "ir_version" : "graph")
              + ". Check that the file is an .onnx model and was copied whole.");
    }
    return proto;
  }

  static Model fromProto(Onnx.ModelProto p, Path baseDir, String origin) {
    ModelReader r = new ModelReader(baseDir, origin);
    try {
      return r.model(p);
    } catch (IllegalArgumentException | IllegalStateException e) {
      throw new OnnxFormatException(origin + ": " + e.getMessage(), e);
    }
  }

  private Model model(Onnx.ModelProto p) {
    Graph g = graph(p.getGraph());
    Model m = new Model(g);
    m.setIrVersion(p.hasIrVersion() ? p.getIrVersion() : null);
    for (Onnx.OperatorSetIdProto op : p.getOpsetImportList()) {
      m.setOpset(op.getDomain(), op.getVersion());
    }
    m.setProducerName(p.hasProducerName() ? p.getProducerName() : null);
    m.setProducerVersion(p.hasProducerVersion() ? p.getProducerVersion() : null);
    m.setDomain(p.hasDomain() ? p.getDomain() : null);
    m.setModelVersion(p.hasModelVersion() ? p.getModelVersion() : null);
    m.setDocString(p.hasDocString() ? p.getDocString() : null);
    for (Onnx.StringStringEntryProto e : p.getMetadataPropsList()) {
      m.putMetadata(e.getKey(), e.getValue());
    }
    for (Onnx.FunctionProto f : p.getFunctionsList()) {
      m.functions().add(function(f));
    }
    wireAll();
    m.setExtras(
        p.toBuilder()
            .clearIrVersion()
            .clearOpsetImport()
            .clearProducerName()
            .clearProducerVersion()
            .clearDomain()
            .clearModelVersion()
            .clearDocString()
            .clearGraph()
            .clearMetadataProps()
            .clearFunctions()
            .build()
            .toByteArray());
    ProtoFidelity.recordOpsets(m, p);
    return m;
  }

  private void wireAll() {
    for (Runnable w : wiring) w.run();
    wiring.clear();
  }

  private Function function(Onnx.FunctionProto p) {
    Graph body = new Graph(null);
    for (String in : p.getInputList()) {
      body.addInput(new Value(in, null));
    }
    nodes(body, p.getNodeList());
    wiring.add(
        () -> {
          for (String out : p.getOutputList()) {
            body.addOutput(resolve(body, out, "output of function '" + p.getName() + "'"));
          }
          valueInfos(body, p.getValueInfoList());
        });
    Function f = new Function(p.hasDomain() ? p.getDomain() : null, p.getName(), body);
    f.setOverload(p.hasOverload() ? p.getOverload() : null);
    f.setDocString(p.hasDocString() ? p.getDocString() : null);
    f.attributeNames().addAll(p.getAttributeList());
    for (Onnx.AttributeProto a : p.getAttributeProtoList()) {
      f.attributeDefaults().add(attr(a));
    }
    for (Onnx.OperatorSetIdProto op : p.getOpsetImportList()) {
      f.opsets().put(op.getDomain(), op.getVersion());
    }
    f.setExtras(
        p.toBuilder()
            .clearName()
            .clearInput()
            .clearOutput()
            .clearAttribute()
            .clearAttributeProto()
            .clearValueInfo()
            .clearNode()
            .clearDocString()
            .clearOpsetImport()
            .clearDomain()
            .clearOverload()
            .build()
            .toByteArray());
    return f;
  }

  Graph graph(Onnx.GraphProto p) {
    Graph g = new Graph(p.hasName() ? p.getName() : null);
    g.setDocString(p.hasDocString() ? p.getDocString() : null);
    for (Onnx.ValueInfoProto vi : p.getInputList()) {
      Value v = new Value(vi.getName(), vi.hasType() ? type(vi.getType()) : null);
      valueInfoFields(v, vi);
      g.addInput(v);
    }
    for (Onnx.TensorProto t : p.getInitializerList()) {
      if (!t.hasName() || t.getName().isEmpty()) {
        throw new OnnxFormatException(
            origin + ": graph '" + g.name() + "' has an initializer with no name.");
      }
      Value existing = g.value(t.getName()).orElse(null);
      Type declared = existing == null ? null : existing.type().orElse(null);
      Value v = g.addInitializer(t.getName(), tensor(t));
      if (declared != null) v.setType(declared);
    }
    for (Onnx.SparseTensorProto s : p.getSparseInitializerList()) {
      g.addSparseInitializer(s.getValues().getName(), s.toByteArray());
    }
    nodes(g, p.getNodeList());
    wiring.add(
        () -> {
          for (Onnx.ValueInfoProto vi : p.getOutputList()) {
            Value v = resolve(g, vi.getName(), "output of graph '" + g.name() + "'");
            if (v.type().isEmpty() && vi.hasType()) v.setType(type(vi.getType()));
            if (v.docString() == null && vi.hasDocString()) v.setDocString(vi.getDocString());
            g.addOutput(v);
          }
          valueInfos(g, p.getValueInfoList());
        });
    g.setExtras(
        p.toBuilder()
            .clearNode()
            .clearName()
            .clearInitializer()
            .clearSparseInitializer()
            .clearDocString()
            .clearInput()
            .clearOutput()
            .clearValueInfo()
            .build()
            .toByteArray());
    return g;
  }

  private void valueInfos(Graph g, List<Onnx.ValueInfoProto> infos) {
    for (Onnx.ValueInfoProto vi : infos) {
      Value v = g.value(vi.getName()).orElse(null);
      if (v == null || g.valueInfo().contains(v)) {
        // A stale or duplicate entry: keep it, detached, so that save writes it back.
        v = new Value(vi.getName(), null);
        if (vi.hasType()) v.setType(type(vi.getType()));
        valueInfoFields(v, vi);
      } else {
        if (vi.hasType()) v.setType(type(vi.getType()));
        valueInfoFields(v, vi);
      }
      g.addValueInfo(v);
    }
  }

  private static void valueInfoFields(Value v, Onnx.ValueInfoProto vi) {
    if (vi.hasDocString()) v.setDocString(vi.getDocString());
    Onnx.ValueInfoProto rest = vi.toBuilder().clearName().clearType().clearDocString().build();
    if (rest.getSerializedSize() > 0) v.setExtras(rest.toByteArray());
  }

  private void nodes(Graph g, List<Onnx.NodeProto> protos) {
    for (Onnx.NodeProto np : protos) {
      List<Attr> attrs = new ArrayList<>(np.getAttributeCount());
      for (Onnx.AttributeProto a : np.getAttributeList()) attrs.add(attr(a));
      Node n =
          new Node(
              np.hasDomain() ? np.getDomain() : null,
              np.getOpType(),
              List.of(),
              np.getOutputList(),
              attrs,
              np.hasName() ? np.getName() : null);
      n.setOverload(np.hasOverload() ? np.getOverload() : null);
      n.setDocString(np.hasDocString() ? np.getDocString() : null);
      Onnx.NodeProto rest =
          np.toBuilder()
              .clearInput()
              .clearOutput()
              .clearName()
              .clearOpType()
              .clearDomain()
              .clearOverload()
              .clearAttribute()
              .clearDocString()
              .build();
      if (rest.getSerializedSize() > 0) n.setExtras(rest.toByteArray());
      try {
        g.addNode(n);
      } catch (IllegalArgumentException e) {
        throw new OnnxFormatException(
            origin + ": node '" + n.displayName() + "' (" + np.getOpType() + "): " + e.getMessage(),
            e);
      }
      List<String> inputs = np.getInputList();
      wiring.add(
          () -> {
            for (int i = 0; i < inputs.size(); i++) {
              String name = inputs.get(i);
              n.appendInput(
                  name.isEmpty()
                      ? null
                      : resolve(
                          g,
                          name,
                          "input " + i + " of node '" + n.displayName() + "' (" + n.opType() + ")"));
            }
          });
    }
  }

  private Value resolve(Graph g, String name, String where) {
    return g.lookup(name)
        .orElseThrow(
            () ->
                new OnnxFormatException(
                    origin
                        + ": "
                        + where
                        + " reads '"
                        + name
                        + "', which no node, graph input or initializer of graph '"
                        + g.name()
                        + "' (or an enclosing graph) defines. The model is malformed; re-export it."));
  }

  Attr attr(Onnx.AttributeProto p) {
    AttrType type = p.hasType() ? AttrType.fromCode(p.getType().getNumber()) : inferType(p);
    Onnx.AttributeProto.Builder rest = p.toBuilder().clearName().clearRefAttrName().clearDocString();
    if (p.hasType()) rest.clearType();
    Object value = null;
    if (!p.hasRefAttrName()) {
      switch (type) {
        case FLOAT -> {
          value = p.getF();
          rest.clearF();
        }
        case INT -> {
          value = p.getI();
          rest.clearI();
        }
        case STRING -> {
          value = p.getS().toByteArray();
          rest.clearS();
        }
        case TENSOR -> {
          value = tensor(p.getT());
          rest.clearT();
        }
        case GRAPH -> {
          value = graph(p.getG());
          rest.clearG();
        }
        case SPARSE_TENSOR -> {
          value = p.getSparseTensor().toByteArray();
          rest.clearSparseTensor();
        }
        case TYPE_PROTO -> {
          value = type(p.getTp());
          rest.clearTp();
        }
        case FLOATS -> {
          float[] f = new float[p.getFloatsCount()];
          for (int i = 0; i < f.length; i++) f[i] = p.getFloats(i);
          value = f;
          rest.clearFloats();
        }
        case INTS -> {
          value = p.getIntsList().stream().mapToLong(Long::longValue).toArray();
          rest.clearInts();
        }
        case STRINGS -> {
          value = p.getStringsList().stream().map(b -> b.toByteArray()).toList();
          rest.clearStrings();
        }
        case TENSORS -> {
          value = p.getTensorsList().stream().map(this::tensor).toList();
          rest.clearTensors();
        }
        case GRAPHS -> {
          value = p.getGraphsList().stream().map(this::graph).toList();
          rest.clearGraphs();
        }
        case SPARSE_TENSORS -> {
          value = p.getSparseTensorsList().stream().map(s -> s.toByteArray()).toList();
          rest.clearSparseTensors();
        }
        case TYPE_PROTOS -> {
          value = p.getTypeProtosList().stream().map(ModelReader::type).toList();
          rest.clearTypeProtos();
        }
        default -> {}
      }
    }
    byte[] extras = rest.build().toByteArray();
    if (!p.hasType()) extras = ProtoFidelity.markTypeAbsent(extras);
    return new Attr(
        p.getName(),
        type,
        value,
        p.hasRefAttrName() ? p.getRefAttrName() : null,
        p.hasDocString() ? p.getDocString() : null,
        extras);
  }

  /** IR version 1 attributes may lack `type`; the set field says it. */
  private static AttrType inferType(Onnx.AttributeProto p) {
    if (p.hasF()) return AttrType.FLOAT;
    if (p.hasI()) return AttrType.INT;
    if (p.hasS()) return AttrType.STRING;
    if (p.hasT()) return AttrType.TENSOR;
    if (p.hasG()) return AttrType.GRAPH;
    if (p.hasSparseTensor()) return AttrType.SPARSE_TENSOR;
    if (p.hasTp()) return AttrType.TYPE_PROTO;
    if (p.getFloatsCount() > 0) return AttrType.FLOATS;
    if (p.getIntsCount() > 0) return AttrType.INTS;
    if (p.getStringsCount() > 0) return AttrType.STRINGS;
    if (p.getTensorsCount() > 0) return AttrType.TENSORS;
    if (p.getGraphsCount() > 0) return AttrType.GRAPHS;
    if (p.getSparseTensorsCount() > 0) return AttrType.SPARSE_TENSORS;
    if (p.getTypeProtosCount() > 0) return AttrType.TYPE_PROTOS;
    return AttrType.UNDEFINED;
  }

  Tensor tensor(Onnx.TensorProto t) {
    DataType dt = DataType.fromCodeOrNull(t.getDataType());
    String name = t.hasName() ? t.getName() : null;
    if (dt == null) {
      throw new OnnxFormatException(
          origin + ": tensor '" + name + "' has unknown data type code " + t.getDataType() + ".");
    }
    long[] dims = t.getDimsList().stream().mapToLong(Long::longValue).toArray();
    for (long d : dims) {
      if (d < 0) {
        throw new OnnxFormatException(
            origin + ": tensor '" + name + "' has a negative dim in " + t.getDimsList() + ".");
      }
    }
    String doc = t.hasDocString() ? t.getDocString() : null;
    Onnx.TensorProto.Builder rest =
        t.toBuilder().clearDims().clearDataType().clearName().clearDocString();
    if (t.getDataLocation() == Onnx.TensorProto.DataLocation.EXTERNAL) {
      String location = null;
      long offset = 0;
      long length = -1;
      List<Map.Entry<String, String>> entries = new ArrayList<>();
      for (Onnx.StringStringEntryProto e : t.getExternalDataList()) {
        entries.add(new AbstractMap.SimpleImmutableEntry<>(e.getKey(), e.getValue()));
        try {
          switch (e.getKey()) {
            case "location" -> location = e.getValue();
            case "offset" -> offset = Long.parseLong(e.getValue());
            case "length" -> length = Long.parseLong(e.getValue());
            default -> {}
          }
        } catch (NumberFormatException ex) {
          throw new OnnxFormatException(
              origin + ": tensor '" + name + "' has a non-numeric external data "
                  + e.getKey() + " '" + e.getValue() + "'.");
        }
      }
      // Checks the location now, so a path leaving the folder fails at load, not at first use.
      ExternalTensor.resolveInside(baseDir, location, name);
      rest.clearExternalData().clearDataLocation();
      return new ExternalTensor(
          name, dt, dims, baseDir, location, offset, length, entries, doc,
          rest.build().toByteArray());
    }
    Storage storage;
    if (t.hasRawData()) {
      storage = new Storage.Raw(t.getRawData().asReadOnlyByteBuffer());
      rest.clearRawData();
    } else if (t.getFloatDataCount() > 0) {
      float[] f = new float[t.getFloatDataCount()];
      for (int i = 0; i < f.length; i++) f[i] = t.getFloatData(i);
      storage = new Storage.Floats(f);
      rest.clearFloatData();
    } else if (t.getInt32DataCount() > 0) {
      storage = new Storage.Int32s(t.getInt32DataList().stream().mapToInt(Integer::intValue).toArray());
      rest.clearInt32Data();
    } else if (t.getInt64DataCount() > 0) {
      storage = new Storage.Int64s(t.getInt64DataList().stream().mapToLong(Long::longValue).toArray());
      rest.clearInt64Data();
    } else if (t.getDoubleDataCount() > 0) {
      double[] d = new double[t.getDoubleDataCount()];
      for (int i = 0; i < d.length; i++) d[i] = t.getDoubleData(i);
      storage = new Storage.Doubles(d);
      rest.clearDoubleData();
    } else if (t.getUint64DataCount() > 0) {
      storage = new Storage.Uint64s(t.getUint64DataList().stream().mapToLong(Long::longValue).toArray());
      rest.clearUint64Data();
    } else if (t.getStringDataCount() > 0 || dt == DataType.STRING) {
      storage = new Storage.Strings(t.getStringDataList().stream().map(b -> b.toByteArray()).toList());
      rest.clearStringData();
    } else {
      storage = new Storage.Empty();
    }
    return new DenseTensor(name, dt, dims, storage, doc, rest.build().toByteArray());
  }

  static Type type(Onnx.TypeProto t) {
    String den = t.hasDenotation() ? t.getDenotation() : null;
    switch (t.getValueCase()) {
      case TENSOR_TYPE -> {
        Onnx.TypeProto.Tensor tt = t.getTensorType();
        return new Type.TensorType(
            tt.hasElemType() ? DataType.fromCode(tt.getElemType()) : null,
            tt.hasShape() ? java.util.Optional.of(shape(tt.getShape())) : java.util.Optional.empty(),
            den);
      }
      case SPARSE_TENSOR_TYPE -> {
        Onnx.TypeProto.SparseTensor st = t.getSparseTensorType();
        return new Type.SparseTensorType(
            st.hasElemType() ? DataType.fromCode(st.getElemType()) : null,
            st.hasShape() ? java.util.Optional.of(shape(st.getShape())) : java.util.Optional.empty(),
            den);
      }
      case SEQUENCE_TYPE -> {
        Onnx.TypeProto.Sequence s = t.getSequenceType();
        return new Type.SequenceType(s.hasElemType() ? type(s.getElemType()) : null, den);
      }
      case MAP_TYPE -> {
        Onnx.TypeProto.Map m = t.getMapType();
        return new Type.MapType(
            m.hasKeyType() ? DataType.fromCode(m.getKeyType()) : null,
            m.hasValueType() ? type(m.getValueType()) : null,
            den);
      }
      case OPTIONAL_TYPE -> {
        Onnx.TypeProto.Optional o = t.getOptionalType();
        return new Type.OptionalType(o.hasElemType() ? type(o.getElemType()) : null, den);
      }
      case OPAQUE_TYPE -> {
        Onnx.TypeProto.Opaque o = t.getOpaqueType();
        return new Type.OpaqueType(
            o.hasDomain() ? o.getDomain() : null, o.hasName() ? o.getName() : null, den);
      }
      default -> {
        return new Type.UnsetType(den);
      }
    }
  }

  static Shape shape(Onnx.TensorShapeProto s) {
    List<Dim> dims = new ArrayList<>(s.getDimCount());
    List<String> dens = new ArrayList<>();
    boolean anyDen = false;
    for (Onnx.TensorShapeProto.Dimension d : s.getDimList()) {
      dims.add(
          d.hasDimValue()
              ? Dim.of(d.getDimValue())
              : d.hasDimParam() ? Dim.of(d.getDimParam()) : Dim.unknown());
      dens.add(d.hasDenotation() ? d.getDenotation() : null);
      anyDen |= d.hasDenotation();
    }
    return anyDen ? Shape.withDenotations(dims, dens) : Shape.of(dims);
  }
}
