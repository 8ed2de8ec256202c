package dev.graft.trainer.autodiff.rules;

import static dev.graft.trainer.autodiff.GradBuilder.grads;
import static dev.graft.trainer.autodiff.GradBuilder.none;
import static dev.graft.trainer.autodiff.GradBuilder.some;

import dev.graft.ir.Attr;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.trainer.autodiff.GradBuilder;
import java.util.List;
import java.util.Optional;

/**
 * Gradients of ScatterElements and ScatterND, without reduction or with {@code reduction=add}.
 * The updates read the gradient where they were written; the data keeps the gradient everywhere
 * an update did not overwrite it (with add, nothing is overwritten).
 *
 * <pre>
 *   y = ScatterElements(data, idx, u, axis)   d(data) = ScatterElements(g, idx, zeros(u), axis)   du = GatherElements(g, idx, axis)
 *   y = ScatterND(data, idx, u)               d(data) = ScatterND(g, idx, zeros(u))               du = GatherND(g, idx)
 *   reduction=add:                            d(data) = g                                         du as above
 * </pre>
 *
 * Without reduction, ONNX leaves duplicate indices undefined, and so is their gradient: the rule
 * is exact when the indices are distinct, as TopK's are. Multiplicative, max and min reductions
 * have no rule here.
 */
public final class ScatterRules {
  private ScatterRules() {}

  public static List<Optional<Value>> scatterElements(GradBuilder b, Node n, List<Value> g) {
    String reduction = reduction(b, n);
    Value data = n.input(0);
    Value idx = n.input(1);
    Value u = n.input(2);
    Value gy = g.get(0);
    int r = b.rank(data, "ScatterElements' gradient gathers along its axis");
    Attr axis = Attr.of("axis", GradBuilder.axis(n.attrLong("axis", 0), r));
    Optional<Value> dData = none();
    if (b.needs(0)) {
      dData = some(reduction.equals("add")
          ? gy
          : b.typedLike(b.op("ScatterElements", List.of(gy, idx, b.zerosLike(u)), axis), data));
    }
    Optional<Value> dU = b.needs(2) ? some(b.typedLike(b.op("GatherElements", List.of(gy, idx), axis), u)) : none();
    return grads(dData, none(), dU);
  }

  public static List<Optional<Value>> scatterNd(GradBuilder b, Node n, List<Value> g) {
    String reduction = reduction(b, n);
    Value data = n.input(0);
    Value idx = n.input(1);
    Value u = n.input(2);
    Value gy = g.get(0);
    Optional<Value> dData = none();
    if (b.needs(0)) {
      dData = some(reduction.equals("add")
          ? gy
          : b.typedLike(b.op("ScatterND", gy, idx, b.zerosLike(u)), data));
    }
    Optional<Value> dU = b.needs(2) ? some(b.typedLike(b.op("GatherND", gy, idx), u)) : none();
    return grads(dData, none(), dU);
  }

  private static String reduction(GradBuilder b, Node n) {
    String reduction = n.attr("reduction").map(a -> a.asString()).orElse("none");
    if (!reduction.equals("none") && !reduction.equals("add")) {
      throw b.fail(
          "reduction '" + reduction + "' has no gradient rule; only 'none' and 'add' do."
              + " Freeze the parameters that lead into this scatter or write it with Add.");
    }
    return reduction;
  }
}
