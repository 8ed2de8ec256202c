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
 * Where a padded value is split into attention heads right away ({@code Reshape} to [batch, seq,
 * heads, d] and {@code Transpose} to [batch, heads, seq, d]), or merged from them right before an
 * unpad, a second pair moves each token's head slices directly, so that neither the transpose nor
 * the padded [batch, seq, features] copy is made:
 *
 * <pre>
 *   0 the value      1 idxHeads [tokens, heads, 3] (batch, head, position)      2 [batch, heads, seq, d]
 *   3 [-1, heads, d]                        4 [1, -1, heads * d]
 *
 *   dev.graft.UnpadHeads(z) = Reshape(GatherND(z, idxHeads), in4)                      d z = PadHeads(g)
 *   dev.graft.PadHeads(u)   = ScatterND(ConstantOfShape(in2), idxHeads, Reshape(u, in3))  d u = UnpadHeads(g)
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
  public static final String UNPAD_HEADS = "UnpadHeads";
  public static final String PAD_HEADS = "PadHeads";

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

  public static List<Optional<Value>> unpadHeads(GradBuilder b, Node n, List<Value> g) {
    return grads(some(b.typedLike(padHeads(b::op, g.get(0), n.inputs()), n.input(0))), none(), none(), none(), none());
  }

  public static List<Optional<Value>> padHeads(GradBuilder b, Node n, List<Value> g) {
    return grads(some(b.typedLike(unpadHeads(b::op, g.get(0), n.inputs()), n.input(0))), none(), none(), none(), none());
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
    Value zeros = zeros(ops, u, in.get(3));
    return ops.op("Reshape", List.of(ops.op("ScatterND", List.of(zeros, in.get(2), u)), in.get(4)));
  }

  /** UnpadHeads' standard ops on {@code z} [batch, heads, seq, d]. */
  public static Value unpadHeads(Ops ops, Value z, List<Value> in) {
    return ops.op("Reshape", List.of(ops.op("GatherND", List.of(z, in.get(1))), in.get(4)));
  }

  /** PadHeads' standard ops on {@code u} [1, tokens, heads * d]; the zeros take its element type. */
  public static Value padHeads(Ops ops, Value u, List<Value> in) {
    Value zeros = zeros(ops, u, in.get(2));
    return ops.op("ScatterND", List.of(zeros, in.get(1), ops.op("Reshape", List.of(u, in.get(3)))));
  }

  private static Value zeros(Ops ops, Value like, Value shape) {
    DataType t = like.dataType().orElseThrow(() -> new IllegalStateException("the element type of '" + like.name() + "' is unknown"));
    DenseTensor zero = DenseTensor.ofRaw(null, t, new long[] {1}, ByteBuffer.allocate((int) t.byteCount(1)));
    return ops.op("ConstantOfShape", List.of(shape), Attr.of("value", zero));
  }
}
