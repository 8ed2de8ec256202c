package dev.graft.ir;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * Deep copies of models and graphs that share what is immutable: tensors (dense data and
 * external tensors, which stay lazy and unmapped), types and shapes. Everything mutable (graphs,
 * nodes, values, use lists, attribute lists) is new, so an edit of the copy never shows in the
 * original. Nothing is serialised: a copy of a 5 GiB model with external data costs the size of
 * its node and value objects.
 *
 * <pre>
 *   original:  x ─► MatMul(W*) ─► y          copy:  x' ─► MatMul'(W*) ─► y'
 *                     W* = ExternalTensor(data.bin@0)       (the same tensor object, unmapped)
 * </pre>
 *
 * <p>Values are mapped by identity across all graphs of the model, so a subgraph node that reads
 * an outer value (a capture) reads the copy of that value. Inputs are wired after every node
 * exists, as the reader does, so stored order that is not topological copies as it is.
 */
final class ModelCopier {
  private final Map<Value, Value> values = new IdentityHashMap<>();
  private final List<Runnable> wiring = new ArrayList<>();

  static Model copy(Model src) {
    ModelCopier c = new ModelCopier();
    Model m = new Model(c.graph(src.graph()));
    m.setIrVersion(src.rawIrVersion());
    for (Map.Entry<String, Long> e : src.opsets().entrySet()) m.setOpset(e.getKey(), e.getValue());
    m.setProducerName(src.producerName());
    m.setProducerVersion(src.producerVersion());
    m.setDomain(src.domain());
    m.setModelVersion(src.modelVersion());
    m.setDocString(src.docString());
    for (Map.Entry<String, String> e : src.metadata().entrySet()) {
      m.putMetadata(e.getKey(), e.getValue());
    }
    for (Function f : src.functions()) m.functions().add(c.function(f));
    m.setExtras(src.extras());
    c.wire();
    return m;
  }

  /** A copy of a top-level graph (a subgraph's captures would have nothing to map to). */
  static Graph copy(Graph src) {
    ModelCopier c = new ModelCopier();
    Graph g = c.graph(src);
    c.wire();
    return g;
  }

  private void wire() {
    for (Runnable w : wiring) w.run();
    wiring.clear();
  }

  private Function function(Function src) {
    Function f = new Function(src.domain(), src.name(), graph(src.body()));
    f.setOverload(src.overload());
    f.setDocString(src.docString());
    f.attributeNames().addAll(src.attributeNames());
    for (Attr a : src.attributeDefaults()) f.attributeDefaults().add(attr(a));
    f.opsets().putAll(src.opsets());
    f.setExtras(src.extras());
    return f;
  }

  private Graph graph(Graph src) {
    Graph g = new Graph(src.name());
    g.setDocString(src.docString());
    g.setExtras(src.extras());
    g.copyFreshCounterFrom(src);
    for (Value in : src.inputs()) {
      Value v = values.get(in);
      if (v == null) {
        v = valueLike(in);
        values.put(in, v);
      }
      g.addInput(v);
    }
    for (Value init : src.initializers()) {
      Value v = g.addInitializer(init.name(), init.initializer().orElseThrow());
      v.setTypeOf(init);
      v.setDocString(init.docString());
      v.setExtras(init.extras());
      values.put(init, v);
    }
    for (Value s : src.sparseInitializers()) {
      Value v = g.addSparseInitializer(s.name(), s.sparseInitializer());
      if (!values.containsKey(s)) {
        v.setTypeOf(s);
        v.setDocString(s.docString());
        v.setExtras(s.extras());
        values.put(s, v);
      }
    }
    for (Node n : src.nodes()) g.addNode(node(n));
    wiring.add(
        () -> {
          for (Value out : src.outputs()) g.addOutput(mapped(out, src));
          for (Value vi : src.valueInfo()) {
            Value v = values.get(vi);
            // A stale value_info entry (no value of that name) stays a detached copy.
            g.addValueInfo(v != null ? v : valueLike(vi));
          }
        });
    return g;
  }

  private Node node(Node src) {
    List<String> outNames = new ArrayList<>(src.outputs().size());
    for (Value o : src.outputs()) outNames.add(o == null ? null : o.name());
    List<Attr> attrs = new ArrayList<>();
    for (Attr a : src.attributeMap().values()) attrs.add(attr(a));
    Node n = new Node(src.rawDomain(), src.opType(), List.of(), outNames, attrs, src.rawName());
    n.setOverload(src.overload());
    n.setDocString(src.docString());
    n.setExtras(src.extras());
    for (int i = 0; i < outNames.size(); i++) {
      Value o = src.output(i);
      if (o == null) continue;
      Value c = n.output(i);
      c.setTypeOf(o);
      c.setDocString(o.docString());
      c.setExtras(o.extras());
      values.put(o, c);
    }
    List<Value> inputs = src.inputs();
    wiring.add(
        () -> {
          for (Value in : inputs) n.appendInput(in == null ? null : mapped(in, src.graph()));
        });
    return n;
  }

  @SuppressWarnings("unchecked")
  private Attr attr(Attr a) {
    Object v = a.value();
    if (v != null && a.refAttrName() == null) {
      v =
          switch (a.type()) {
            case GRAPH -> graph((Graph) v);
            case GRAPHS -> ((List<Graph>) v).stream().map(this::graph).toList();
            case INTS -> ((long[]) v).clone();
            case FLOATS -> ((float[]) v).clone();
            default -> v; // tensors, types, strings and opaque protos are immutable: shared
          };
    }
    return new Attr(a.name(), a.type(), v, a.refAttrName(), a.docString(), a.extras());
  }

  private static Value valueLike(Value src) {
    Value v = new Value(src.name(), src.type().orElse(null));
    v.setDocString(src.docString());
    v.setExtras(src.extras());
    return v;
  }

  private Value mapped(Value v, Graph where) {
    Value c = values.get(v);
    if (c == null) {
      throw new IllegalArgumentException(
          "Cannot copy graph '"
              + (where == null ? "?" : where.name())
              + "': value '"
              + v.name()
              + "' is read there but defined outside what is being copied. Copy the whole model"
              + " (Model.copy()).");
    }
    return c;
  }
}
