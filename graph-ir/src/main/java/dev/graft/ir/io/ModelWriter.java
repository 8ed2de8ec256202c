package dev.graft.ir.io;

import com.google.protobuf.ByteString;
import com.google.protobuf.CodedOutputStream;
import com.google.protobuf.InvalidProtocolBufferException;
import dev.graft.ir.Attr;
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
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * IR to protobuf, and to disk. Each object's extras are the base its proto is built on, so
 * fields the IR does not model come back as they were read.
 */
final class ModelWriter {
  /** Protobuf cannot serialize a message of 2 GiB or more; stay well below. */
  static final long INLINE_LIMIT = 1_800_000_000L;

  private static final int ALIGNMENT = 64;
  /**
   * Tensors of at least this size start on a page boundary, so that ONNX Runtime can map them
   * from the file instead of reading them into its own memory (it maps only page-aligned data).
   */
  private static final long PAGE_ALIGNED_FROM = 1 << 20;

  private static final int PAGE = 4096;

  private final SaveOptions options;
  private final FileChannel data;
  private final String dataLocation;
  private long dataOffset;
  /** Large writes into the data file past the page cache; null without a data file. */
  private DirectWrites direct;
  /** External tensors written as pointers to a file that already holds them, by location. */
  private final Map<Tensor, String> references;
  /** The file unchanged external tensors are being copied from, kept open between tensors. */
  private FileChannel source;
  private Path sourcePath;

  private ModelWriter(SaveOptions options, FileChannel data, String dataLocation) {
    this(options, data, dataLocation, Map.of());
  }

  private ModelWriter(
      SaveOptions options, FileChannel data, String dataLocation, Map<Tensor, String> references) {
    this.options = options;
    this.data = data;
    this.dataLocation = dataLocation;
    this.references = references;
  }

  /**
   * Writes {@code model} to {@code target} for an ONNX Runtime session (see {@link SessionFile}):
   * the tensors in {@code references} (an identity map) point at files that already hold them,
   * under the given location relative to {@code target}'s folder, with their offsets; other
   * tensors of at least {@code SaveOptions.DEFAULT_THRESHOLD} bytes go to {@code dataFile}, the
   * rest inline. Not atomic: the caller owns both files and deletes them.
   */
  static void writeForSession(Model model, Path target, Path dataFile, Map<Tensor, String> references)
      throws IOException {
    Onnx.ModelProto proto;
    try (FileChannel ch =
        FileChannel.open(dataFile, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
      ModelWriter w = new ModelWriter(SaveOptions.external(), ch, dataFile.getFileName().toString(), references);
      try {
        proto = w.model(model);
      } finally {
        w.closeSource();
      }
    }
    try (OutputStream out = Files.newOutputStream(target)) {
      CodedOutputStream cos = CodedOutputStream.newInstance(out, 1 << 16);
      proto.writeTo(cos);
      cos.flush();
    }
  }

  static byte[] toBytes(Model model) {
    Onnx.ModelProto p = new ModelWriter(SaveOptions.inline(), null, null).model(model);
    if (p.getSerializedSize() < 0) {
      throw new OnnxFormatException(
          "The model is over 2 GiB and cannot be serialized inline; save it with external data.");
    }
    return p.toByteArray();
  }

  static void write(Model model, Path path, SaveOptions options) {
    write(model, path, options, null, Map.of());
  }

  /**
   * Writes {@code model} to {@code path}. With {@code staged}, the data file is the one the
   * staged save already began ({@link StagedSave}): tensors that read it are written as pointers
   * at their offsets, the rest are appended after them. {@code references} (an identity map)
   * points tensors at files that already hold them, by location relative to {@code path}'s folder.
   */
  static void write(
      Model model, Path path, SaveOptions options, StagedSave staged, Map<Tensor, String> references) {
    write(model, path, options, staged, references, Map.of());
  }

  /**
   * As above; {@code links} maps hard links made under temporary names ({@link LinkedSave}) to
   * the names they take beside the model: they are moved there after the data file and before
   * the model file, and deleted if the save fails.
   */
  static void write(
      Model model,
      Path path,
      SaveOptions options,
      StagedSave staged,
      Map<Tensor, String> references,
      Map<Path, Path> links) {
    Path target = path.toAbsolutePath().normalize();
    Path dir = target.getParent();
    if (dir == null || !Files.isDirectory(dir)) {
      throw new UncheckedIOException(
          new IOException(
              "Cannot write " + path + ": folder " + dir + " does not exist. Create it first."));
    }
    if (Files.isDirectory(target)) {
      throw new UncheckedIOException(
          new IOException("Cannot write " + path + ": it is a folder. Give a file name."));
    }
    SaveOptions effective = options;
    long inlineBytes = inlineSize(model, options);
    if (inlineBytes > INLINE_LIMIT) {
      if (options.layout() == SaveOptions.Layout.INLINE) {
        throw new OnnxFormatException(
            "Cannot save "
                + path
                + " inline: its tensors hold "
                + inlineBytes
                + " bytes, past protobuf's 2 GiB limit. Save it with external data.");
      }
      effective = new SaveOptions(SaveOptions.Layout.EXTERNAL, options.threshold(), options.dataFileName());
    }
    boolean needsData = staged != null || needsDataFile(model, effective, references);
    String location = dataLocation(target, effective);
    Path dataTarget = needsData ? ExternalTensor.resolveInside(dir, location, "<data file>") : null;
    Path modelTmp = null;
    Path dataTmp = null;
    try {
      modelTmp = AtomicFiles.createTemp(target);
      Onnx.ModelProto proto;
      if (staged != null) {
        dataTmp = staged.file();
        Map<Tensor, String> refs = new IdentityHashMap<>(references);
        for (Tensor t : Tensors.all(model)) {
          if (t instanceof ExternalTensor e && staged.holds(e)) refs.put(t, location);
        }
        FileChannel ch = staged.channel();
        ModelWriter w = new ModelWriter(effective, ch, location, refs);
        w.dataOffset = staged.end();
        w.direct = staged.writes();
        try {
          proto = w.model(model);
        } finally {
          w.closeSource();
        }
        ch.force(true);
        // Tensors that read the staged file keep their data after it is renamed.
        for (Tensor t : Tensors.all(model)) {
          if (t instanceof ExternalTensor e && staged.holds(e)) e.rawData();
        }
      } else if (needsData) {
        dataTmp = AtomicFiles.createTemp(dataTarget);
        try (FileChannel ch = FileChannel.open(dataTmp, StandardOpenOption.WRITE);
            DirectWrites direct = DirectWrites.open(dataTmp, ch)) {
          ModelWriter w = new ModelWriter(effective, ch, location, references);
          w.direct = direct;
          try {
            proto = w.model(model);
          } finally {
            w.closeSource();
          }
          ch.force(true);
        }
      } else {
        proto = new ModelWriter(effective, null, null, references).model(model);
      }
      try (OutputStream out = Files.newOutputStream(modelTmp)) {
        CodedOutputStream cos = CodedOutputStream.newInstance(out, 1 << 16);
        proto.writeTo(cos);
        cos.flush();
      }
      if (needsData) {
        // Tensors of this model that read the file being replaced keep their data: map them
        // now, and the mapping outlives the move (it holds the old file, not the name).
        mapTensorsReading(model, dataTarget);
        AtomicFiles.replace(dataTmp, dataTarget);
        dataTmp = null;
      }
      for (Map.Entry<Path, Path> link : links.entrySet()) {
        mapTensorsReading(model, link.getValue());
        AtomicFiles.replace(link.getKey(), link.getValue());
      }
      mapTensorsReading(model, target);
      AtomicFiles.replace(modelTmp, target);
      modelTmp = null;
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot write " + path + ": " + e.getMessage(), e);
    } finally {
      AtomicFiles.deleteQuietly(modelTmp);
      AtomicFiles.deleteQuietly(dataTmp);
      links.keySet().forEach(AtomicFiles::deleteQuietly); // moved already on success
    }
  }

  /** The data file's name, relative to the model's folder. */
  static String dataLocation(Path target, SaveOptions options) {
    return options.dataFileName() != null
        ? options.dataFileName()
        : target.getFileName().toString() + ".data";
  }

  private static void mapTensorsReading(Model model, Path file) throws IOException {
    for (Tensor t : Tensors.all(model)) {
      if (t instanceof ExternalTensor e && !e.isMapped()) {
        Path f = e.file();
        if (Files.exists(f) && Files.exists(file) && Files.isSameFile(f, file)) {
          e.rawData();
        }
      }
    }
  }

  private static long inlineSize(Model model, SaveOptions options) {
    long total = 0;
    for (Tensor t : Tensors.all(model)) {
      boolean external =
          switch (options.layout()) {
            case INLINE -> false;
            case KEEP -> t instanceof ExternalTensor;
            case EXTERNAL -> t instanceof ExternalTensor || t.byteSize() >= options.threshold();
          };
      if (!external) total += t.byteSize();
    }
    return total;
  }

  private static boolean needsDataFile(Model model, SaveOptions options, Map<Tensor, String> references) {
    if (options.layout() == SaveOptions.Layout.INLINE) return false;
    for (Tensor t : Tensors.all(model)) {
      if (references.containsKey(t)) continue; // points at a file that holds it already
      if (t instanceof ExternalTensor) return true;
      if (options.layout() == SaveOptions.Layout.EXTERNAL
          && t.byteSize() >= options.threshold()
          && t.name() != null) return true;
    }
    return false;
  }

  // ---- IR to proto ---------------------------------------------------------------------------

  private Onnx.ModelProto model(Model m) {
    Onnx.ModelProto.Builder b = parse(Onnx.ModelProto.parser(), m.extras(), Onnx.ModelProto.getDefaultInstance()).toBuilder();
    if (m.rawIrVersion() != null) b.setIrVersion(m.rawIrVersion());
    ProtoFidelity.writeOpsets(m, b);
    if (m.producerName() != null) b.setProducerName(m.producerName());
    if (m.producerVersion() != null) b.setProducerVersion(m.producerVersion());
    if (m.domain() != null) b.setDomain(m.domain());
    if (m.modelVersion() != null) b.setModelVersion(m.modelVersion());
    if (m.docString() != null) b.setDocString(m.docString());
    b.setGraph(graph(m.graph(), true));
    for (Map.Entry<String, String> e : m.metadata().entrySet()) {
      b.addMetadataProps(
          Onnx.StringStringEntryProto.newBuilder().setKey(e.getKey()).setValue(e.getValue()));
    }
    for (Function f : m.functions()) b.addFunctions(function(f));
    return b.build();
  }

  private Onnx.FunctionProto function(Function f) {
    Onnx.FunctionProto.Builder b =
        parse(Onnx.FunctionProto.parser(), f.extras(), Onnx.FunctionProto.getDefaultInstance()).toBuilder();
    if (f.name() != null) b.setName(f.name());
    Graph body = f.body();
    for (Value v : body.inputs()) b.addInput(v.name());
    for (Value v : body.outputs()) b.addOutput(v.name());
    b.addAllAttribute(f.attributeNames());
    for (Attr a : f.attributeDefaults()) b.addAttributeProto(attr(a));
    for (Value v : body.valueInfo()) b.addValueInfo(valueInfo(v));
    for (Node n : body.nodes()) b.addNode(node(n));
    if (f.docString() != null) b.setDocString(f.docString());
    for (Map.Entry<String, Long> e : f.opsets().entrySet()) {
      b.addOpsetImport(
          Onnx.OperatorSetIdProto.newBuilder().setDomain(e.getKey()).setVersion(e.getValue()));
    }
    if (f.domain() != null) b.setDomain(f.domain());
    if (f.overload() != null) b.setOverload(f.overload());
    return b.build();
  }

  private Onnx.GraphProto graph(Graph g, boolean topLevel) {
    Onnx.GraphProto.Builder b =
        parse(Onnx.GraphProto.parser(), g.extras(), Onnx.GraphProto.getDefaultInstance()).toBuilder();
    for (Node n : g.nodes()) b.addNode(node(n));
    if (g.name() != null) b.setName(g.name());
    for (Value v : g.initializers()) b.addInitializer(tensor(v.initializer().orElseThrow(), v.name(), true));
    for (Value v : g.sparseInitializers()) {
      b.addSparseInitializer(
          parse(Onnx.SparseTensorProto.parser(), v.sparseInitializer(), null));
    }
    if (g.docString() != null) b.setDocString(g.docString());
    for (Value v : g.inputs()) b.addInput(valueInfo(v));
    for (Value v : g.outputs()) b.addOutput(valueInfo(v));
    for (Value v : g.valueInfo()) b.addValueInfo(valueInfo(v));
    return b.build();
  }

  private Onnx.ValueInfoProto valueInfo(Value v) {
    Onnx.ValueInfoProto.Builder b =
        parse(Onnx.ValueInfoProto.parser(), v.extras(), Onnx.ValueInfoProto.getDefaultInstance()).toBuilder();
    b.setName(v.name());
    v.type().ifPresent(t -> b.setType(type(t)));
    if (v.docString() != null) b.setDocString(v.docString());
    return b.build();
  }

  private Onnx.NodeProto node(Node n) {
    Onnx.NodeProto.Builder b =
        parse(Onnx.NodeProto.parser(), n.extras(), Onnx.NodeProto.getDefaultInstance()).toBuilder();
    for (Value v : n.inputs()) b.addInput(v == null ? "" : v.name());
    for (Value v : n.outputs()) b.addOutput(v == null ? "" : v.name());
    if (n.rawName() != null) b.setName(n.rawName());
    b.setOpType(n.opType());
    if (n.rawDomain() != null) b.setDomain(n.rawDomain());
    if (n.overload() != null) b.setOverload(n.overload());
    for (Attr a : n.attributeMap().values()) b.addAttribute(attr(a));
    if (n.docString() != null) b.setDocString(n.docString());
    return b.build();
  }

  @SuppressWarnings("unchecked")
  private Onnx.AttributeProto attr(Attr a) {
    Onnx.AttributeProto.Builder b =
        parse(Onnx.AttributeProto.parser(), a.extras(), Onnx.AttributeProto.getDefaultInstance()).toBuilder();
    boolean typeAbsent = ProtoFidelity.takeTypeAbsent(b);
    b.setName(a.name());
    if (a.refAttrName() != null) b.setRefAttrName(a.refAttrName());
    if (a.docString() != null) b.setDocString(a.docString());
    if (!typeAbsent) b.setType(Onnx.AttributeProto.AttributeType.forNumber(a.type().code()));
    Object v = a.value();
    if (v != null) {
      switch (a.type()) {
        case FLOAT -> b.setF((Float) v);
        case INT -> b.setI((Long) v);
        case STRING -> b.setS(ByteString.copyFrom((byte[]) v));
        case TENSOR -> b.setT(tensor((Tensor) v, null, false));
        case GRAPH -> b.setG(graph((Graph) v, false));
        case SPARSE_TENSOR -> b.setSparseTensor(parse(Onnx.SparseTensorProto.parser(), (byte[]) v, null));
        case TYPE_PROTO -> b.setTp(type((Type) v));
        case FLOATS -> {
          for (float f : (float[]) v) b.addFloats(f);
        }
        case INTS -> {
          for (long i : (long[]) v) b.addInts(i);
        }
        case STRINGS -> {
          for (byte[] s : (List<byte[]>) v) b.addStrings(ByteString.copyFrom(s));
        }
        case TENSORS -> {
          for (Tensor t : (List<Tensor>) v) b.addTensors(tensor(t, null, false));
        }
        case GRAPHS -> {
          for (Graph g : (List<Graph>) v) b.addGraphs(graph(g, false));
        }
        case SPARSE_TENSORS -> {
          for (byte[] s : (List<byte[]>) v) b.addSparseTensors(parse(Onnx.SparseTensorProto.parser(), s, null));
        }
        case TYPE_PROTOS -> {
          for (Type t : (List<Type>) v) b.addTypeProtos(type(t));
        }
        default -> {}
      }
    }
    return b.build();
  }

  /**
   * A tensor's proto. {@code name} overrides the tensor's own name (initializers are named by
   * their value); {@code mayGoExternal} is false for attribute tensors, which ONNX keeps inline
   * unless they already were external.
   */
  private Onnx.TensorProto tensor(Tensor t, String name, boolean mayGoExternal) {
    Onnx.TensorProto.Builder b =
        parse(Onnx.TensorProto.parser(), t.extras(), Onnx.TensorProto.getDefaultInstance()).toBuilder();
    for (long d : t.dims()) b.addDims(d);
    b.setDataType(t.dataType().code());
    String n = name != null ? name : t.name();
    if (n != null) b.setName(n);
    if (t.docString() != null) b.setDocString(t.docString());
    String reference = references.isEmpty() ? null : references.get(t);
    if (reference != null) {
      writeReference(b, (ExternalTensor) t, reference);
      return b.build();
    }
    boolean external =
        switch (options.layout()) {
          case INLINE -> false;
          case KEEP -> t instanceof ExternalTensor;
          case EXTERNAL ->
              t instanceof ExternalTensor
                  || (mayGoExternal && t.byteSize() >= options.threshold() && t.dataType().bits() > 0);
        };
    if (external) {
      writeExternal(b, t);
    } else if (t instanceof DenseTensor d) {
      writeStorage(b, d.storage());
    } else {
      b.setRawData(ByteString.copyFrom(t.rawData()));
    }
    return b.build();
  }

  private void writeExternal(Onnx.TensorProto.Builder b, Tensor t) {
    int align = t.byteSize() >= PAGE_ALIGNED_FROM ? PAGE : ALIGNMENT;
    long pad = (align - dataOffset % align) % align;
    long offset = dataOffset + pad;
    long length;
    try {
      data.position(offset);
      if (t instanceof ExternalTensor e && e.fileHoldsData()) {
        length = transfer(e, offset);
      } else {
        ByteBuffer bytes = t.rawData();
        length = bytes.remaining();
        if (direct != null && length >= PAGE_ALIGNED_FROM) {
          direct.write(bytes, offset);
        } else {
          while (bytes.hasRemaining()) data.write(bytes);
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot write external data of tensor '" + t.name() + "'", e);
    }
    dataOffset = offset + length;
    List<Map.Entry<String, String>> entries = new ArrayList<>();
    entries.add(Map.entry("location", dataLocation));
    entries.add(Map.entry("offset", Long.toString(offset)));
    entries.add(Map.entry("length", Long.toString(length)));
    writeEntries(b, t, entries);
  }

  /**
   * Copies an unmapped external tensor's bytes file to file, to byte {@code offset} (the data
   * channel's position): one of 1 MiB or more through {@link DirectWrites#copy} (past the page
   * cache), smaller ones by the kernel's copy; neither through the heap or a mapping. A source too
   * short for the tensor falls back to {@link ExternalTensor#rawData()}, which says what is wrong.
   */
  private long transfer(ExternalTensor e, long offset) throws IOException {
    FileChannel src = source(e.file());
    long length = e.length();
    if (src.size() < e.offset() + length) {
      ByteBuffer bytes = e.rawData(); // throws, naming the tensor and the sizes
      length = bytes.remaining();
      while (bytes.hasRemaining()) data.write(bytes);
      return length;
    }
    // Large weights go past the page cache (DirectWrites).
    if (direct != null && length >= PAGE_ALIGNED_FROM) {
      direct.copy(src, e.offset(), length, offset);
      return length;
    }
    long done = 0;
    while (done < length) {
      long n = src.transferTo(e.offset() + done, length - done, data);
      if (n <= 0) throw new IOException("short copy from " + e.file() + " at byte " + (e.offset() + done));
      done += n;
    }
    return length;
  }

  /**
   * The open channel of the file tensors are copied from: consecutive tensors of one data file
   * (the usual case) share it instead of opening the file once each.
   */
  private FileChannel source(Path file) throws IOException {
    if (source != null && file.equals(sourcePath)) return source;
    closeSource();
    source = FileChannel.open(file, StandardOpenOption.READ);
    sourcePath = file;
    return source;
  }

  private void closeSource() {
    if (source == null) return;
    try {
      source.close();
    } catch (IOException ignored) {
      // read only; nothing to lose
    }
    source = null;
    sourcePath = null;
  }

  /** A pointer to where the data already is: the tensor's own offsets under {@code location}. */
  private static void writeReference(Onnx.TensorProto.Builder b, ExternalTensor t, String location) {
    List<Map.Entry<String, String>> entries = new ArrayList<>();
    entries.add(Map.entry("location", location));
    entries.add(Map.entry("offset", Long.toString(t.offset())));
    entries.add(Map.entry("length", Long.toString(t.length())));
    writeEntries(b, t, entries);
  }

  private static void writeEntries(
      Onnx.TensorProto.Builder b, Tensor t, List<Map.Entry<String, String>> entries) {
    if (t instanceof ExternalTensor e) {
      // Keep other keys (a checksum, say) and the original order when they still hold.
      List<Map.Entry<String, String>> kept = new ArrayList<>();
      for (Map.Entry<String, String> old : e.entries()) {
        switch (old.getKey()) {
          case "location" -> kept.add(entries.get(0));
          case "offset" -> kept.add(entries.get(1));
          case "length" -> kept.add(entries.get(2));
          default -> kept.add(old);
        }
      }
      for (Map.Entry<String, String> fresh : entries) {
        if (kept.stream().noneMatch(k -> k.getKey().equals(fresh.getKey()))) kept.add(fresh);
      }
      entries = kept;
    }
    for (Map.Entry<String, String> e : entries) {
      b.addExternalData(
          Onnx.StringStringEntryProto.newBuilder().setKey(e.getKey()).setValue(e.getValue()));
    }
    b.setDataLocation(Onnx.TensorProto.DataLocation.EXTERNAL);
  }

  private static void writeStorage(Onnx.TensorProto.Builder b, Storage s) {
    if (s instanceof Storage.Raw r) {
      b.setRawData(ByteString.copyFrom(r.bytes().duplicate()));
    } else if (s instanceof Storage.Floats f) {
      for (float x : f.values()) b.addFloatData(x);
    } else if (s instanceof Storage.Int32s i) {
      for (int x : i.values()) b.addInt32Data(x);
    } else if (s instanceof Storage.Int64s l) {
      for (long x : l.values()) b.addInt64Data(x);
    } else if (s instanceof Storage.Doubles d) {
      for (double x : d.values()) b.addDoubleData(x);
    } else if (s instanceof Storage.Uint64s u) {
      for (long x : u.values()) b.addUint64Data(x);
    } else if (s instanceof Storage.Strings st) {
      for (byte[] x : st.values()) b.addStringData(ByteString.copyFrom(x));
    }
  }

  static Onnx.TypeProto type(Type t) {
    Onnx.TypeProto.Builder b = Onnx.TypeProto.newBuilder();
    if (t.denotation() != null) b.setDenotation(t.denotation());
    if (t instanceof Type.TensorType tt) {
      Onnx.TypeProto.Tensor.Builder x = Onnx.TypeProto.Tensor.newBuilder();
      if (tt.elementType() != null) x.setElemType(tt.elementType().code());
      tt.shape().ifPresent(s -> x.setShape(shape(s)));
      b.setTensorType(x);
    } else if (t instanceof Type.SparseTensorType st) {
      Onnx.TypeProto.SparseTensor.Builder x = Onnx.TypeProto.SparseTensor.newBuilder();
      if (st.elementType() != null) x.setElemType(st.elementType().code());
      st.shape().ifPresent(s -> x.setShape(shape(s)));
      b.setSparseTensorType(x);
    } else if (t instanceof Type.SequenceType s) {
      Onnx.TypeProto.Sequence.Builder x = Onnx.TypeProto.Sequence.newBuilder();
      if (s.elementType() != null) x.setElemType(type(s.elementType()));
      b.setSequenceType(x);
    } else if (t instanceof Type.MapType m) {
      Onnx.TypeProto.Map.Builder x = Onnx.TypeProto.Map.newBuilder();
      if (m.keyType() != null) x.setKeyType(m.keyType().code());
      if (m.valueType() != null) x.setValueType(type(m.valueType()));
      b.setMapType(x);
    } else if (t instanceof Type.OptionalType o) {
      Onnx.TypeProto.Optional.Builder x = Onnx.TypeProto.Optional.newBuilder();
      if (o.elementType() != null) x.setElemType(type(o.elementType()));
      b.setOptionalType(x);
    } else if (t instanceof Type.OpaqueType o) {
      Onnx.TypeProto.Opaque.Builder x = Onnx.TypeProto.Opaque.newBuilder();
      if (o.domain() != null) x.setDomain(o.domain());
      if (o.name() != null) x.setName(o.name());
      b.setOpaqueType(x);
    }
    return b.build();
  }

  static Onnx.TensorShapeProto shape(Shape s) {
    Onnx.TensorShapeProto.Builder b = Onnx.TensorShapeProto.newBuilder();
    List<String> dens = s.denotations();
    for (int i = 0; i < s.rank(); i++) {
      Dim d = s.dim(i);
      Onnx.TensorShapeProto.Dimension.Builder x = Onnx.TensorShapeProto.Dimension.newBuilder();
      if (d instanceof Dim.Fixed f) x.setDimValue(f.size());
      else if (d instanceof Dim.Symbolic sym) x.setDimParam(sym.name());
      if (!dens.isEmpty() && !dens.get(i).isEmpty()) x.setDenotation(dens.get(i));
      b.addDim(x);
    }
    return b.build();
  }

  private static <T extends com.google.protobuf.MessageLite> T parse(
      com.google.protobuf.Parser<T> parser, byte[] bytes, T empty) {
    if ((bytes == null || bytes.length == 0) && empty != null) return empty;
    try {
      return parser.parseFrom(bytes);
    } catch (InvalidProtocolBufferException e) {
      throw new AssertionError("extras written by ModelReader do not parse", e);
    }
  }
}
