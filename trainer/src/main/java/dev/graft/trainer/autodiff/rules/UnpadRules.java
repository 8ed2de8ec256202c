package dev.graft.trainer.autodiff.rules;

import static dev.graft.trainer.autodiff.GradBuilder.grads;
import static dev.graft.trainer.autodiff.GradBuilder.none;
import static dev.graft.trainer.autodiff.GradBuilder.some;

import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.trainer.autodiff.GradBuilder;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Optional;

/**
 * Gradients of padding-free training's two placeholder ops ({@code train.Unpadding}), each the
 * other's gradient. Both take the same inputs:
 *
 * <pre>
 *   0 the value      1 idx [1, tokens]      2 idx3 [1, tokens, 1]      3 [batch*seq, rest...]
 *   4 [batch, seq, rest...]                 5 [-1, rest...]
 *
 *   dev.graft.Unpad(x)  = Gather(Reshape(x, in5), idx, axis=0)                      d x = Pad(g)
 *   dev.graft.Pad(u)    = Reshape(ScatterND(ConstantOfShape(in3), idx3, u), in4)    d u = Unpad(g)
 * </pre>
 *
 * Written as placeholders through differentiation and lowered to those standard ops after, so
 * that the backward reads only the indices and the shapes (computed from the token mask, a graph
 * input): the generic Gather rule would scatter-add into zeros shaped like the gathered value,
 * which keeps that value alive from the forward pass to the backward one.
 */
public final class UnpadRules {
  /** The placeholders' domain; nothing outside the training copy sees it. */
  public static final String DOMAIN = "dev.graft";

  public static final String UNPAD = "Unpad";
  public static final String PAD = "Pad";

  private UnpadRules() {}

  /** Makes one op: a graph builder's or a gradient builder's {@code op(type, inputs, attrs)}. */
  @FunctionalInterface
  public interface Ops {
    Value op(String opType, List<Value> inputs, Attr... attrs);
  }

  public static List<Optional<Value>> unpad(GradBuilder b, Node n, List<Value> g) {
    return withFirst(b.typedLike(pad(b::op, g.get(0), n.inputs()), n.input(0)));
  }

  public static List<Optional<Value>> pad(GradBuilder b, Node n, List<Value> g) {
    return withFirst(b.typedLike(unpad(b::op, g.get(0), n.inputs()), n.input(0)));
  }

  private static List<Optional<Value>> withFirst(Value d) {
    return grads(some(d), none(), none(), none(), none(), none());
  }

  /** Unpad's standard ops on {@code x}, with the placeholder's other inputs {@code in}. */
  public static Value unpad(Ops ops, Value x, List<Value> in) {
    return ops.op("Gather", List.of(ops.op("Reshape", List.of(x, in.get(5))), in.get(1)), Attr.of("axis", 0L));
  }

  /** Pad's standard ops on {@code u}; the zeros take its element type. */
  public static Value pad(Ops ops, Value u, List<Value> in) {
    DataType t = u.dataType().orElseThrow(() -> new IllegalStateException("the element type of '" + u.name() + "' is unknown"));
    DenseTensor zero = DenseTensor.ofRaw(null, t, new long[] {1}, ByteBuffer.allocate((int) t.byteCount(1)));
    Value zeros = ops.op("ConstantOfShape", List.of(in.get(3)), Attr.of("value", zero));
    return ops.op("Reshape", List.of(ops.op("ScatterND", List.of(zeros, in.get(2), u)), in.get(4)));
  }
}
