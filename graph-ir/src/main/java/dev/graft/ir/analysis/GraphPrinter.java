package dev.graft.ir.analysis;

import com.google.common.base.Strings;
import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Graph;
import dev.graft.ir.Node;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * Readable text for a graph, one node per line, for logs, {@code graft inspect} and golden tests:
 *
 * <pre>
 * graph main (input_ids: int64[batch,sequence], ...) -> (last_hidden_state: float[batch,sequence,384])
 *   initializers: 101 (22,713,216 parameters)
 *   %q = MatMul(%x, %onnx::MatMul_787)          # /encoder/layer.0/attention/self/query/MatMul
 *   %t = Transpose[perm=[0,2,1,3]](%q)
 *   %y = If(%c)                                 # If_0
 *     then_branch: graph then () -> (t: float[2])
 *       %t = Add(%a, %one)
 * </pre>
 *
 * <p>Nodes print in stored order; attributes print compactly in brackets (long lists are cut,
 * tensors show their type and, when tiny and in memory, their values); subgraphs print indented
 * under the node that holds them, after their attribute's name; the node's name, when it has one, follows as a comment. Graph
 * inputs that are also initializers (old exporters list them) are counted with the initializers,
 * not listed as inputs. Printing never reads external tensor data.
 */
public final class GraphPrinter {
  /** Where node-name comments start, when the node text is short enough. */
  private static final int COMMENT_COLUMN = 44;
  /** Lists longer than this print their first elements and their length. */
  private static final int MAX_LIST = 16;
  /** Tensors with at most this many elements print their values. */
  private static final int MAX_TENSOR_VALUES = 8;

  private GraphPrinter() {}

  public static String print(Graph g) {
    StringBuilder b = new StringBuilder();
    b.append(header(g)).append('\n');
    body(g, "  ", b);
    return b.toString();
  }

  private static String header(Graph g) {
    String ins =
        g.inputs().stream()
            .filter(v -> v == null || !v.isInitializer())
            .map(GraphPrinter::declaration)
            .collect(Collectors.joining(", "));
    String outs = g.outputs().stream().map(GraphPrinter::declaration).collect(Collectors.joining(", "));
    return "graph " + Strings.nullToEmpty(g.name()) + " (" + ins + ") -> (" + outs + ")";
  }

  private static void body(Graph g, String indent, StringBuilder b) {
    int count = 0;
    long parameters = 0;
    for (Value v : g.initializers()) {
      count++;
      if (v.isInitializer()) parameters += v.initializer().get().numElements();
    }
    if (count > 0) {
      b.append(indent)
          .append(String.format(Locale.ROOT, "initializers: %,d (%,d parameters)", count, parameters))
          .append('\n');
    }
    int sparse = g.sparseInitializers().size();
    if (sparse > 0) b.append(indent).append("sparse initializers: ").append(sparse).append('\n');
    for (Node n : g.nodes()) {
      String code = indent + nodeText(n);
      b.append(code);
      if (!n.name().isEmpty()) {
        b.append(" ".repeat(Math.max(2, COMMENT_COLUMN - code.length())))
            .append("# ")
            .append(n.name());
      }
      b.append('\n');
      for (Map.Entry<String, Attr> e : n.attributeMap().entrySet()) {
        for (Graph sub : e.getValue().subgraphs()) {
          b.append(indent).append("  ").append(e.getKey()).append(": ").append(header(sub)).append('\n');
          body(sub, indent + "    ", b);
        }
      }
    }
  }

  /** {@code %a, %b = domain:Op[attr=1, ...](%x, _, %y)}. */
  static String nodeText(Node n) {
    StringBuilder b = new StringBuilder();
    b.append(n.outputs().stream().map(GraphPrinter::ref).collect(Collectors.joining(", ")));
    if (!n.outputs().isEmpty()) b.append(" = ");
    b.append(OpCensus.key(n));
    // Graph attributes print as indented blocks below the node, not in the brackets.
    List<String> attrs =
        n.attributeMap().values().stream()
            .filter(a -> a.isReference() || a.subgraphs().isEmpty())
            .map(GraphPrinter::attrText)
            .toList();
    if (!attrs.isEmpty()) b.append('[').append(String.join(", ", attrs)).append(']');
    b.append('(')
        .append(n.inputs().stream().map(GraphPrinter::ref).collect(Collectors.joining(", ")))
        .append(')');
    return b.toString();
  }

  private static String ref(Value v) {
    return v == null ? "_" : "%" + v.name();
  }

  private static String declaration(Value v) {
    return v == null ? "_" : v.name() + ": " + typeText(v.type().orElse(null));
  }

  static String typeText(Type t) {
    if (t == null || t instanceof Type.UnsetType) return "?";
    if (t instanceof Type.TensorType tt) return tt.toString();
    if (t instanceof Type.SparseTensorType st) {
      return "sparse "
          + (st.elementType() == null ? "?" : st.elementType().name().toLowerCase(Locale.ROOT))
          + st.shape().map(Object::toString).orElse("[*]");
    }
    if (t instanceof Type.SequenceType s) return "seq(" + typeText(s.elementType()) + ")";
    if (t instanceof Type.OptionalType o) return "optional(" + typeText(o.elementType()) + ")";
    if (t instanceof Type.MapType m) {
      return "map(" + m.keyType().name().toLowerCase(Locale.ROOT) + ", " + typeText(m.valueType()) + ")";
    }
    if (t instanceof Type.OpaqueType o) return "opaque(" + o.domain() + "." + o.name() + ")";
    return t.toString();
  }

  static String attrText(Attr a) {
    String name = a.name();
    if (a.isReference()) return name + "=@" + a.refAttrName();
    if (a.value() == null) return name + "=?";
    String v =
        switch (a.type()) {
          case INT -> Long.toString(a.asLong());
          case FLOAT -> floatText(a.asFloat());
          case STRING -> quoted(a.asString());
          case INTS -> list(a.asLongList().stream().map(String::valueOf).toList());
          case FLOATS -> list(a.asFloatList().stream().map(GraphPrinter::floatText).toList());
          case STRINGS -> list(a.asStrings().stream().map(GraphPrinter::quoted).toList());
          case TENSOR -> tensorText(a.asTensor());
          case TENSORS -> list(a.asTensors().stream().map(GraphPrinter::tensorText).toList());
          case GRAPH -> "<graph " + a.asGraph().name() + ">";
          case GRAPHS -> list(a.asGraphs().stream().map(g -> "<graph " + g.name() + ">").toList());
          case TYPE_PROTO -> typeText((Type) a.value());
          case TYPE_PROTOS -> "<types>";
          case SPARSE_TENSOR -> "<sparse tensor>";
          case SPARSE_TENSORS -> "<sparse tensors>";
          default -> String.valueOf(a.value());
        };
    return name + "=" + v;
  }

  private static String list(List<String> items) {
    if (items.size() <= MAX_LIST) return "[" + String.join(",", items) + "]";
    List<String> head = new ArrayList<>(items.subList(0, 8));
    return "[" + String.join(",", head) + ",... (" + items.size() + ")]";
  }

  private static String quoted(String s) {
    return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
  }

  /** Java's shortest round-tripping text, with a lower-case exponent: 0.5, 1.0e-12. */
  private static String floatText(float f) {
    return Float.toString(f).replace('E', 'e');
  }

  private static String tensorText(Tensor t) {
    StringBuilder b = new StringBuilder();
    b.append(t.dataType().name().toLowerCase(Locale.ROOT)).append('[');
    long[] dims = t.dims();
    for (int i = 0; i < dims.length; i++) b.append(i == 0 ? "" : ",").append(dims[i]);
    b.append(']');
    // Only in-memory tensors show values: an external one would have to be mapped from disk.
    if (t instanceof DenseTensor && t.numElements() <= MAX_TENSOR_VALUES) {
      List<String> values = values(t);
      if (values != null) b.append('{').append(String.join(",", values)).append('}');
    }
    return b.toString();
  }

  private static List<String> values(Tensor t) {
    DataType d = t.dataType();
    List<String> out = new ArrayList<>();
    switch (d) {
      case FLOAT -> {
        for (float f : t.toFloatArray()) out.add(floatText(f));
      }
      case DOUBLE -> {
        for (double x : t.toDoubleArray()) out.add(Double.toString(x).replace('E', 'e'));
      }
      case BOOL -> {
        for (long x : t.toLongArray()) out.add(x != 0 ? "true" : "false");
      }
      case INT64, INT32, INT16, INT8, UINT8, UINT16, UINT32 -> {
        for (long x : t.toLongArray()) out.add(Long.toString(x));
      }
      default -> {
        return null;
      }
    }
    return out;
  }
}
