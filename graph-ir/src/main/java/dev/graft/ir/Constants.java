package dev.graft.ir;

import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Optional;
import java.util.function.Predicate;

/**
 * Moves constants between Constant nodes and initializers. Some exporters store every weight as
 * a Constant node; passes that look for "a MatMul with a constant weight" read initializers, so
 * lifting first makes both forms look alike. Values keep their names and uses either way.
 *
 * <pre>
 *   w = Constant[value=T]();  y = MatMul(x, w)     lift    initializer w = T;  y = MatMul(x, w)
 * </pre>
 */
public final class Constants {
  private Constants() {}

  /** The tensor a Constant node makes, from whichever value attribute it has. */
  public static Optional<Tensor> constantValue(Node n) {
    if (!n.is("Constant")) return Optional.empty();
    for (Attr a : n.attributeMap().values()) {
      if (a.isReference()) return Optional.empty();
      String name = n.output().name();
      switch (a.name()) {
        case "value":
          return Optional.of(a.asTensor());
        case "value_float":
          return Optional.of(DenseTensor.scalar(name, a.asFloat()));
        case "value_floats":
          float[] f = a.asFloats();
          return Optional.of(DenseTensor.ofFloats(name, new long[] {f.length}, f));
        case "value_int":
          return Optional.of(DenseTensor.scalar(name, a.asLong()));
        case "value_ints":
          return Optional.of(DenseTensor.vector(name, a.asLongs()));
        case "value_string":
          return Optional.of(
              new DenseTensor(
                  name,
                  DataType.STRING,
                  new long[0],
                  new DenseTensor.Storage.Strings(
                      List.of(a.asString().getBytes(StandardCharsets.UTF_8))),
                  null,
                  null));
        default:
          break;
      }
    }
    return Optional.empty();
  }

  /**
   * The constant data of a value: an initializer or a Constant node's output. The one "constant
   * value of" question of the house; everything that asks it calls this. An initializer that is
   * also a graph input is NOT a constant: ONNX lets the caller feed it at run time (old
   * exporters list every initializer as an input), so folding or specialising on its stored value
   * could change what the model computes.
   */
  public static Optional<Tensor> valueOf(Value v) {
    if (v == null) return Optional.empty();
    if (v.isInitializer() && !v.isGraphInput()) return v.initializer();
    return v.producer().flatMap(Constants::constantValue);
  }

  /** Integer contents of a constant value (axes, shapes), if it is one. */
  public static Optional<long[]> longsOf(Value v) {
    return valueOf(v).filter(t -> t.dataType().isInteger()).map(Tensor::toLongArray);
  }

  /** Lifts every Constant node of {@code g} (not of subgraphs) to an initializer; returns how many. */
  public static int liftToInitializers(Graph g) {
    int count = 0;
    for (Node n : g.nodes()) {
      Optional<Tensor> t = constantValue(n);
      if (t.isEmpty() || n.output() == null) continue;
      Value out = n.output();
      String name = out.name();
      Value init = g.addInitializer(g.freshName(name + "_lifted"), t.get().withName(name));
      init.setType(out.type().orElseGet(() -> Type.tensor(t.get().dataType(), t.get().shape())));
      boolean wasOutput = out.isGraphOutput();
      out.replaceAllUsesWith(init, true);
      g.removeNode(n);
      g.rename(init, name);
      if (wasOutput) assert g.outputs().contains(init);
      count++;
    }
    return count;
  }

  /**
   * Lowers the initializers that {@code which} accepts to Constant nodes at the head of the graph;
   * initializers that are also graph inputs (overridable) are left alone. Returns how many.
   */
  public static int lowerToConstants(Graph g, Predicate<Value> which) {
    int count = 0;
    List<Node> nodes = g.nodes();
    Node first = nodes.isEmpty() ? null : nodes.get(0);
    for (Value v : g.initializers()) {
      if (v.isGraphInput() || !which.test(v)) continue;
      String name = v.name();
      Tensor t = v.initializer().orElseThrow();
      Node c =
          new Node(
              "",
              "Constant",
              List.of(),
              List.of(g.freshName(name + "_const")),
              List.of(Attr.of("value", t.withName(name))),
              g.freshName(name + "_Constant"));
      if (first == null) g.addNode(c);
      else g.insertBefore(first, c);
      c.output().setTypeOf(v);
      v.replaceAllUsesWith(c.output(), true);
      g.removeInitializer(v);
      g.rename(c.output(), name);
      count++;
    }
    return count;
  }

}
