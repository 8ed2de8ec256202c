package dev.graft.rewrite;

import static com.google.common.base.Preconditions.checkArgument;

import dev.graft.ir.Attr;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Use;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.convert.OpsetUpgrade;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.ir.tensor.Tensor;
import java.util.List;

/**
 * The edits passes share: where new nodes go, how a wrapped value's readers move to the wrapper,
 * and the ops whose form depends on the opset. Passes meet models at the working opset (17) or
 * newer only ({@link WorkingModels#load} upgrades older ones once), so only the changes after 17
 * have two forms here (ReduceMax's axes became an input at 18); an older model is refused with a
 * message that says how to load it.
 */
public final class Splice {
  private Splice() {}

  /** A builder that inserts just after {@code n} (so new nodes may read its outputs). */
  public static GraphBuilder after(Node n) {
    Graph g = n.graph();
    GraphBuilder b = GraphBuilder.on(g);
    return g.nodeAfter(n).map(b::before).orElseGet(b::atEnd);
  }

  /** A builder that inserts after the producer of {@code v}, or at the head for inputs. */
  public static GraphBuilder afterProducerOf(Value v, Graph g) {
    if (v.producer().isPresent()) return after(v.producer().get());
    GraphBuilder b = GraphBuilder.on(g);
    return g.firstNode().map(b::before).orElseGet(b::atEnd);
  }

  /**
   * Makes every reader of {@code old} except {@code wrapper} read {@code wrapper}'s output
   * instead. When {@code old} is a graph output, the wrapper's output takes its place and its
   * name, so the model's interface keeps its names.
   *
   * <pre>
   *   y = F(x); z = G(y)        wrap(y, W = Merge(y, d))        y' = F(x); y = W(y', d); z = G(y)
   * </pre>
   */
  public static void wrap(Value old, Node wrapper) {
    checkArgument(wrapper.input(0) == old, "wrapper '%s' must read '%s' at input 0", wrapper.displayName(), old.name());
    Value replacement = wrapper.output();
    for (Use u : old.uses()) {
      if (u.node() != wrapper) u.node().setInput(u.index(), replacement);
    }
    Graph g = old.graph();
    if (old.isGraphOutput() && old.producer().isPresent()) {
      int i = g.outputs().indexOf(old);
      String name = old.name();
      g.rename(old, g.freshName(name + "_inner"));
      g.rename(replacement, name);
      replacement.setType(old.type());
      g.setOutput(i, replacement);
    }
  }

  /** Adds an initializer under a fresh name based on {@code base}. */
  public static Value initializer(Graph g, String base, Tensor t) {
    String name = g.freshName(base);
    return g.addInitializer(name, t.withName(name));
  }

  /** Unsqueeze, axes as an input; {@code m} must be at the working opset. */
  public static Value unsqueeze(GraphBuilder b, Model m, Value x, long... axes) {
    opset(m);
    return b.op("Unsqueeze", x, b.int64s(axes));
  }

  /** ReduceSum, axes as an input; {@code m} must be at the working opset. */
  public static Value reduceSum(GraphBuilder b, Model m, Value x, boolean keepDims, long... axes) {
    opset(m);
    return b.op("ReduceSum", List.of(x, b.int64s(axes)), Attr.of("keepdims", keepDims ? 1L : 0L));
  }

  /** ReduceMax with axes as an attribute (below 18) or an input. */
  public static Value reduceMax(GraphBuilder b, Model m, Value x, boolean keepDims, long... axes) {
    Attr keep = Attr.of("keepdims", keepDims ? 1L : 0L);
    if (opset(m) < 18) return b.op("ReduceMax", List.of(x), Attr.ints("axes", axes), keep);
    return b.op("ReduceMax", List.of(x, b.int64s(axes)), keep);
  }

  /**
   * Dropout, an identity at inference, ratio as an input; the training graph sets training_mode.
   * {@code m} must be at the working opset.
   */
  public static Value dropout(GraphBuilder b, Model m, Value x, float ratio) {
    opset(m);
    return b.op("Dropout", x, b.scalar(ratio));
  }

  /**
   * The model's default-domain opset, the working one when it imports none; refuses a model older
   * than the working opset ({@link WorkingModels#requireWorkingOpset}).
   */
  public static long opset(Model m) {
    WorkingModels.requireWorkingOpset(m, "A pass");
    return m.defaultOpset().orElse(OpsetUpgrade.WORKING_OPSET);
  }
}
