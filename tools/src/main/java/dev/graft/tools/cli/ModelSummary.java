package dev.graft.tools.cli;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMap;
import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Dim;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Shape;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.OpCensus;
import dev.graft.ir.tensor.ExternalTensor;
import dev.graft.ir.tensor.Tensor;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;

/**
 * What {@code graft inspect} reports about a model, gathered once and then printed as text or
 * JSON, so that both forms always say the same thing.
 *
 * <p>Parameters are the elements of the main graph's initializers. Constant nodes hold weights
 * too (some exporters store every weight that way), so their tensors, in every graph including
 * subgraphs, are counted separately rather than silently mixed in or left out. The op census
 * and node count are of the main graph's own nodes, as {@link OpCensus#of} counts them.
 */
record ModelSummary(
    String model,
    Long irVersion,
    String producer,
    ImmutableMap<String, Long> opsets,
    ImmutableList<Port> inputs,
    ImmutableList<Port> outputs,
    int nodeCount,
    ImmutableMap<String, Integer> opCensus,
    int initializerCount,
    long parameterCount,
    ImmutableMap<String, Long> parametersByType,
    int constantNodeCount,
    long constantCount,
    ImmutableMap<String, Long> constantsByType,
    ImmutableList<ExternalFile> externalData) {

  /**
   * A graph input or output.
   *
   * @param type the element type ("float", "int64"), or the type's text for non-tensors
   * @param shape per dim a Long (fixed), a String (symbolic) or null (unknown); null when the
   *     rank is unknown
   */
  record Port(String name, String type, List<Object> shape) {}

  /** One external data file, as the model refers to it (location relative to the model). */
  record ExternalFile(String location, int tensors, long bytes) {}

  /**
   * Summarises {@code model}. External tensors are checked to be readable (their files exist,
   * stay inside the model's folder and are long enough), so that inspect reports a broken model
   * rather than describing it.
   */
  static ModelSummary of(String label, Model model) {
    Graph graph = model.graph();

    // Before IR version 4 every initializer was also listed as a graph input; only values that
    // have no initializer are inputs a caller must feed.
    ImmutableList<Port> inputs =
        graph.inputs().stream()
            .filter(v -> !v.isInitializer())
            .map(ModelSummary::port)
            .collect(ImmutableList.toImmutableList());
    ImmutableList<Port> outputs =
        graph.outputs().stream().map(ModelSummary::port).collect(ImmutableList.toImmutableList());

    Map<String, Long> paramsByType = new TreeMap<>();
    long params = 0;
    Map<String, long[]> external = new LinkedHashMap<>();
    for (Value init : graph.initializers()) {
      Tensor t = init.initializer().orElseThrow();
      long n = t.numElements();
      params += n;
      paramsByType.merge(typeName(t.dataType()), n, Long::sum);
      noteExternal(t, external);
    }

    Map<String, Long> constByType = new TreeMap<>();
    long constants = 0;
    int constantNodes = 0;
    for (Node node : graph.allNodes()) {
      if (!node.is("Constant")) continue;
      constantNodes++;
      for (Attr a : node.attributes().values()) {
        Optional<Map.Entry<DataType, Long>> held = constantElements(a);
        if (held.isPresent()) {
          constants += held.get().getValue();
          constByType.merge(typeName(held.get().getKey()), held.get().getValue(), Long::sum);
        }
        if (a.value() instanceof Tensor t) noteExternal(t, external);
      }
    }

    ImmutableList<ExternalFile> files =
        external.entrySet().stream()
            .map(e -> new ExternalFile(e.getKey(), (int) e.getValue()[0], e.getValue()[1]))
            .collect(ImmutableList.toImmutableList());

    return new ModelSummary(
        label,
        model.rawIrVersion(),
        producer(model),
        ImmutableMap.copyOf(model.opsets()),
        inputs,
        outputs,
        graph.nodeCount(),
        OpCensus.of(graph),
        graph.initializers().size(),
        params,
        ImmutableMap.copyOf(paramsByType),
        constantNodes,
        constants,
        ImmutableMap.copyOf(constByType),
        files);
  }

  /** The summary as a JSON-ready tree (maps keep their order). */
  Map<String, Object> toJson() {
    Map<String, Object> json = new LinkedHashMap<>();
    json.put("model", model);
    json.put("irVersion", irVersion);
    json.put("producer", producer);
    json.put("opsets", opsets);
    json.put("inputs", ports(inputs));
    json.put("outputs", ports(outputs));
    json.put("nodeCount", nodeCount);
    json.put("opCensus", opCensus);
    json.put("initializerCount", initializerCount);
    json.put("parameterCount", parameterCount);
    json.put("parametersByType", parametersByType);
    json.put("constantNodeCount", constantNodeCount);
    json.put("constantCount", constantCount);
    json.put("constantsByType", constantsByType);
    List<Object> files = new ArrayList<>();
    for (ExternalFile f : externalData) {
      Map<String, Object> m = new LinkedHashMap<>();
      m.put("location", f.location());
      m.put("tensors", f.tensors());
      m.put("bytes", f.bytes());
      files.add(m);
    }
    json.put("externalData", files);
    return json;
  }

  private static List<Object> ports(List<Port> ports) {
    List<Object> out = new ArrayList<>();
    for (Port p : ports) {
      Map<String, Object> m = new LinkedHashMap<>();
      m.put("name", p.name());
      m.put("type", p.type());
      m.put("shape", p.shape());
      out.add(m);
    }
    return out;
  }

  private static Port port(Value v) {
    Type type = v.type();
    if (type instanceof Type.TensorType t) {
      String elem = t.elementType() == null ? null : typeName(t.elementType());
      List<Object> shape = t.shape().map(ModelSummary::dims).orElse(null);
      return new Port(v.name(), elem, shape);
    }
    return new Port(v.name(), type == null ? null : type.toString(), null);
  }

  private static List<Object> dims(Shape shape) {
    List<Object> out = new ArrayList<>();
    for (Dim d : shape.dims()) {
      if (d instanceof Dim.Fixed f) {
        out.add(f.size());
      } else if (d instanceof Dim.Symbolic s) {
        out.add(s.name());
      } else {
        out.add(null);
      }
    }
    return out;
  }

  private static String producer(Model model) {
    String name = model.producerName();
    String version = model.producerVersion();
    if (name == null || name.isEmpty()) return version == null || version.isEmpty() ? null : version;
    return version == null || version.isEmpty() ? name : name + " " + version;
  }

  static String typeName(DataType t) {
    return t.name().toLowerCase(java.util.Locale.ROOT);
  }

  /** The element type and count a Constant attribute holds; empty for ones it cannot size. */
  private static Optional<Map.Entry<DataType, Long>> constantElements(Attr a) {
    Object v = a.value();
    return switch (a.type()) {
      case TENSOR -> Optional.of(Map.entry(((Tensor) v).dataType(), ((Tensor) v).numElements()));
      case FLOAT -> Optional.of(Map.entry(DataType.FLOAT, 1L));
      case FLOATS -> Optional.of(Map.entry(DataType.FLOAT, (long) ((float[]) v).length));
      case INT -> Optional.of(Map.entry(DataType.INT64, 1L));
      case INTS -> Optional.of(Map.entry(DataType.INT64, (long) ((long[]) v).length));
      case STRING -> Optional.of(Map.entry(DataType.STRING, 1L));
      case STRINGS -> Optional.of(Map.entry(DataType.STRING, (long) ((List<?>) v).size()));
      // sparse_value is kept as opaque bytes; its size is not known here.
      default -> Optional.empty();
    };
  }

  /** Records an external tensor under its file, after checking that its data can be read. */
  private static void noteExternal(Tensor t, Map<String, long[]> external) {
    if (t instanceof ExternalTensor x) {
      // Maps the tensor's region: throws ExternalDataException, naming the tensor, when the file
      // is missing, too short, or outside the model's folder.
      x.rawData();
      long[] acc = external.computeIfAbsent(x.location(), k -> new long[2]);
      acc[0]++;
      acc[1] += x.length();
    }
  }
}
