package dev.graft.trainer.train;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Constants;
import dev.graft.ir.DataType;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.ir.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Fuses the exact GELU that exporters write in five ops into one {@code com.microsoft} Gelu node,
 * in the training copy only (the forward model, and so the export, keep their standard ops):
 *
 * <pre>
 *   t = Div(x, sqrt 2)  (or Mul(x, 1/sqrt 2));  a = Add(Erf(t), 1)
 *   y = Mul(Mul(x, a), 0.5)   (or Mul(Mul(x, 0.5), a), operands in either order)
 *     =>  y = com.microsoft.Gelu(x)
 * </pre>
 *
 * ORT fuses the same pattern for inference, but not in a train-step graph, where the backward pass
 * reads the intermediate values; fused here, the forward runs one kernel instead of five, and the
 * gradient rule ({@code UnaryRules.contribGelu}) recomputes what it needs from {@code x} alone, so the
 * intermediates are no longer kept alive until the backward pass reaches them. Com.microsoft Gelu
 * is a contrib op of every ONNX Runtime build (CPU and CUDA); the model gains the import
 * {@code com.microsoft} version 1 when something is fused. A candidate is fused only when the
 * constants are scalars within 1e-4 of sqrt 2 (or its inverse), 1 and 0.5, and no intermediate
 * value is used elsewhere or is a graph output, and x is float32 (the CPU kernel's type). The fused node takes the name of the last Mul and
 * its output keeps the old output's name and type.
 */
public final class GeluFusion {
  public static final String DOMAIN = "com.microsoft";

  private GeluFusion() {}

  /** Imports {@link #DOMAIN} version 1 into {@code m} unless it already has it (after a fusion made a contrib node). */
  static void importDomain(Model m) {
    if (!m.opsets().containsKey(DOMAIN)) m.setOpset(DOMAIN, 1);
  }

  private record Match(Node scale, Node erf, Node add, Node mul, Node half, Value x) {}

  /** Fuses every candidate; returns the names of the Gelu nodes made. */
  public static ImmutableList<String> fuse(Model m) {
    Graph g = m.graph();
    ImmutableList.Builder<String> fused = ImmutableList.builder();
    for (Node erf : List.copyOf(g.nodes())) {
      if (!erf.isIn(g) || !erf.is("Erf")) continue;
      Match match = match(erf);
      if (match != null) fused.add(rewrite(g, match));
    }
    ImmutableList<String> names = fused.build();
    if (!names.isEmpty()) importDomain(m);
    return names;
  }

  private static Match match(Node erf) {
    Node scale = producer(erf.input(0));
    if (scale == null || !onlyFeeds(scale.output(), erf)) return null;
    Value x;
    if (scale.is("Div") && near(scalar(scale.input(1)), Math.sqrt(2))) {
      x = scale.input(0);
    } else if (scale.is("Mul") && near(scalar(scale.input(1)), 1 / Math.sqrt(2))) {
      x = scale.input(0);
    } else if (scale.is("Mul") && near(scalar(scale.input(0)), 1 / Math.sqrt(2))) {
      x = scale.input(1);
    } else {
      return null;
    }
    // The contrib kernel is float32 (and float16 on CUDA); other types keep their ops.
    if (x.dataType().orElse(null) != DataType.FLOAT) return null;
    Node add = onlyUser(erf.output(), "Add");
    if (add == null || !near(scalar(other(add, erf.output())), 1)) return null;
    Node first = onlyUser(add.output(), "Mul");
    if (first == null) return null;
    Value firstOther = other(first, add.output());
    if (firstOther == x) {
      // y = Mul(Mul(x, a), 0.5)
      Node half = onlyUser(first.output(), "Mul");
      if (half == null || !near(scalar(other(half, first.output())), 0.5)) return null;
      return new Match(scale, erf, add, first, half, x);
    }
    // y = Mul(Mul(x, 0.5), a): first reads a and h = Mul(x, 0.5)
    Node h = producer(firstOther);
    if (h == null || !h.is("Mul") || !onlyFeeds(h.output(), first)) return null;
    boolean halfOfX = h.inputCount() == 2
        && ((h.input(0) == x && near(scalar(h.input(1)), 0.5)) || (h.input(1) == x && near(scalar(h.input(0)), 0.5)));
    if (!halfOfX) return null;
    return new Match(scale, erf, add, h, first, x);
  }

  private static String rewrite(Graph g, Match m) {
    Value y = m.half.output();
    String name = y.name();
    String nodeName = m.half.name().isEmpty() ? g.freshName("Gelu") : m.half.name();
    Node gelu = new Node(DOMAIN, "Gelu", List.of(m.x), List.of(g.freshName(name + "_gelu")), List.of(), nodeName);
    g.insertBefore(m.half, gelu);
    List<Value> constantsFed = new ArrayList<>();
    List<Node> dead = new ArrayList<>();
    for (Node n : List.of(m.half, m.mul, m.add, m.erf, m.scale)) {
      if (!n.isIn(g)) continue;
      for (Value in : n.inputs()) if (in != null) constantsFed.add(in);
      dead.add(n);
    }
    g.replaceValue(y, gelu.output(), dead);
    for (Value v : constantsFed) {
      Node p = v.producer().orElse(null);
      if (p != null && p.is("Constant") && p.isIn(g) && !v.hasUses() && !v.isGraphOutput()) g.removeNode(p);
    }
    return nodeName;
  }

  private static Node producer(Value v) {
    if (v == null) return null;
    return v.producer().orElse(null);
  }

  private static Node onlyUser(Value v, String op) {
    return v.soleReader().filter(n -> n.is(op)).orElse(null);
  }

  private static boolean onlyFeeds(Value v, Node user) {
    return !v.isGraphOutput() && !v.uses().isEmpty() && v.uses().stream().allMatch(u -> u.node() == user);
  }

  private static Value other(Node binary, Value known) {
    if (binary.inputCount() != 2) return null;
    return binary.input(0) == known ? binary.input(1) : binary.input(0);
  }

  private static Optional<Double> scalar(Value v) {
    if (v == null) return Optional.empty();
    return Constants.valueOf(v).filter(t -> t.numElements() == 1).map(Tensor::toDoubleArray).map(a -> a[0]);
  }

  private static boolean near(Optional<Double> v, double want) {
    return v.isPresent() && Math.abs(v.get() - want) <= 1e-4 * Math.max(1, Math.abs(want));
  }
}
