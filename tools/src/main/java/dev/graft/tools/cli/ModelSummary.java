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
import dev.graft.ir.Constants;
import dev.graft.ir.tensor.ExternalTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.discover.AttentionModule;
import dev.graft.rewrite.discover.EmbeddingModule;
import dev.graft.rewrite.discover.FeedForwardModule;
import dev.graft.rewrite.discover.LinearModule;
import dev.graft.rewrite.discover.Module;
import dev.graft.rewrite.discover.ModuleDiscovery;
import dev.graft.rewrite.discover.ModuleKind;
import dev.graft.rewrite.discover.NormModule;
import java.util.ArrayList;
import java.util.Arrays;
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
    ImmutableList<ExternalFile> externalData,
    ImmutableList<ModuleRow> modules,
    String modulesNote,
    long trainableParameters,
    ImmutableMap<String, Long> trainableByMethod) {

  /**
   * A graph input or output.
   *
   * @param type the element type ("float", "int64"), or the type's text for non-tensors
   * @param shape per dim a Long (fixed), a String (symbolic) or null (unknown); null when the
   *     rank is unknown
   */
  record Port(String name, String type, List<Object> shape) {}

  /**
   * A module found by discovery.
   *
   * @param kind the {@link ModuleKind} in lower case ("linear", "attention", "ffn", ...)
   * @param layer the transformer layer, or null outside layers
   * @param shapes the shapes of the parameters the module holds, by role ("weight", "bias",
   *     "gamma", "table"; for attention and feed-forward blocks their projections' weights)
   * @param nodes the names of the graph nodes the module covers
   */
  record ModuleRow(String name, String kind, Integer layer, ImmutableMap<String, List<Long>> shapes, ImmutableList<String> nodes) {}

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
        files,
        modules(model),
        null,
        TrainableRegistry.parameterCount(model),
        trainableByMethod(model));
  }

  /** The modules discovery finds in {@code model}, as rows. */
  static ImmutableList<ModuleRow> modules(Model model) {
    return ModuleDiscovery.discover(model).stream().map(ModelSummary::moduleRow).collect(ImmutableList.toImmutableList());
  }

  /**
   * This summary with {@code modules} found in another form of the model than the file's (an int8
   * model's float form), and {@code note} saying which.
   */
  ModelSummary withModules(ImmutableList<ModuleRow> modules, String note) {
    return new ModelSummary(
        model, irVersion, producer, opsets, inputs, outputs, nodeCount, opCensus, initializerCount, parameterCount,
        parametersByType, constantNodeCount, constantCount, constantsByType, externalData, modules, note,
        trainableParameters, trainableByMethod);
  }

  private static ImmutableMap<String, Long> trainableByMethod(Model model) {
    Map<String, Long> out = new TreeMap<>();
    for (TrainableRegistry.Entry e : TrainableRegistry.read(model)) {
      long n = model.graph().initializer(e.initializer()).flatMap(Value::initializer).map(Tensor::numElements).orElse(0L);
      out.merge(e.method(), n, Long::sum);
    }
    return ImmutableMap.copyOf(out);
  }

  private static ModuleRow moduleRow(Module m) {
    Map<String, List<Long>> shapes = new LinkedHashMap<>();
    if (m instanceof LinearModule l) {
      shapes.put("weight", dimsOf(l.weight()));
      l.bias().ifPresent(b -> shapes.put("bias", dimsOf(b)));
    } else if (m instanceof NormModule n) {
      shapes.put("gamma", dimsOf(n.gamma()));
      if (n.shiftUse() != null) shapes.put("beta", dimsOf(n.beta()));
    } else if (m instanceof EmbeddingModule e) {
      shapes.put("table", List.of(e.rows(), e.dim()));
    } else if (m instanceof AttentionModule a) {
      for (LinearModule l : List.of(a.query(), a.key(), a.value(), a.output())) {
        shapes.put(l.name().substring(l.name().lastIndexOf('.') + 1), dimsOf(l.weight()));
      }
    } else if (m instanceof FeedForwardModule f) {
      shapes.put("up", dimsOf(f.up().weight()));
      shapes.put("down", dimsOf(f.down().weight()));
    }
    // Residual adds hold no parameters.
    return new ModuleRow(
        m.name(),
        m.kind().name().toLowerCase(java.util.Locale.ROOT),
        m.layer().isPresent() ? m.layer().getAsInt() : null,
        ImmutableMap.copyOf(shapes),
        m.nodes().stream().map(Node::displayName).collect(ImmutableList.toImmutableList()));
  }

  /** The dims of a constant (initializer or Constant node), or of its inferred shape; [] if unknown. */
  private static List<Long> dimsOf(Value v) {
    Optional<Tensor> t = v.initializer().or(() -> Constants.valueOf(v));
    if (t.isPresent()) return Arrays.stream(t.get().dims()).boxed().collect(ImmutableList.toImmutableList());
    return v.shape().filter(Shape::isStatic).map(s -> Arrays.stream(s.staticSizes()).boxed().collect(ImmutableList.<Long>toImmutableList()))
        .orElse(ImmutableList.of());
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
    List<Object> mods = new ArrayList<>();
    for (ModuleRow r : modules) {
      Map<String, Object> m = new LinkedHashMap<>();
      m.put("name", r.name());
      m.put("kind", r.kind());
      m.put("layer", r.layer());
      m.put("shapes", r.shapes());
      m.put("nodes", r.nodes());
      mods.add(m);
    }
    json.put("modules", mods);
    if (modulesNote != null) json.put("modulesNote", modulesNote);
    json.put("trainableParameters", trainableParameters);
    json.put("trainableByMethod", trainableByMethod);
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
    if (v.tensorType().isPresent()) {
      Type.TensorType t = v.tensorType().get();
      String elem = t.elementType() == null ? null : typeName(t.elementType());
      List<Object> shape = t.shape().map(ModelSummary::dims).orElse(null);
      return new Port(v.name(), elem, shape);
    }
    return new Port(v.name(), v.type().map(Type::toString).orElse(null), null);
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
