package dev.graft.ir.io;

import dev.graft.ir.Attr;
import dev.graft.ir.Function;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.ir.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;

/** Every tensor a model holds: initializers and tensor attributes, subgraphs and functions too. */
final class Tensors {
  private Tensors() {}

  static List<Tensor> all(Model m) {
    List<Tensor> out = new ArrayList<>();
    collect(m.graph(), out);
    for (Function f : m.functions()) collect(f.body(), out);
    return out;
  }

  private static void collect(Graph g, List<Tensor> out) {
    for (Value v : g.initializers()) v.initializer().ifPresent(out::add);
    for (Node n : g.nodes()) {
      for (Attr a : n.attributeMap().values()) {
        if (a.value() instanceof Tensor t) out.add(t);
        if (a.value() instanceof List<?> l) {
          for (Object o : l) if (o instanceof Tensor t) out.add(t);
        }
        for (Graph sub : a.subgraphs()) collect(sub, out);
      }
    }
  }
}
