package dev.graft.ir.convert;

import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * LayerNormalization (opset 17) has no older form, so below 17 it is written the way exporters
 * write LayerNorm for older opsets (and the way {@link LayerNormFusion} reads it back):
 *
 * <pre>
 *   y = LayerNormalization[axis=a, epsilon=e](x, gamma, beta)
 *     =>  mean = ReduceMean[axes=a..-1](x); d = Sub(x, mean)
 *         v = ReduceMean[axes=a..-1](Pow(d, 2)); y = Add(Mul(Div(d, Sqrt(Add(v, e))), gamma), beta)
 * </pre>
 *
 * Refused when the Mean or InvStdDev output is used, when the input is not fp32 (the fused op
 * computes fp16 inputs in fp32; the decomposition would not), or when a positive axis meets an
 * input of unknown rank.
 */
final class LayerNormDecomposition implements DowngradeRule {
  private static final long SINCE = 17;

  @Override
  public Optional<String> refusal(Node node, long from, long to, UpgradeContext ctx) {
    if (to >= SINCE) return Optional.empty();
    for (int i = 1; i < node.outputs().size(); i++) {
      Value o = node.outputs().get(i);
      if (o != null && (o.hasUses() || o.isGraphOutput())) {
        return Optional.of(
            "its output " + i + " ('" + o.name() + "') is used, and the decomposition below opset 17"
                + " only makes Y. Keep the model at opset 17 or newer.");
      }
    }
    Optional<DataType> type = node.input(0).dataType();
    if (type.isPresent() && type.get() != DataType.FLOAT) {
      return Optional.of(
          "its input is " + type.get() + "; only fp32 LayerNormalization is decomposed for opsets"
              + " below 17. Keep the model at opset 17 or newer.");
    }
    if (axes(node, ctx).isEmpty()) {
      return Optional.of(
          "its axis " + node.attrLong("axis", -1) + " counts from the front and the input's rank is"
              + " unknown. Keep the model at opset 17 or newer.");
    }
    return Optional.empty();
  }

  @Override
  public String apply(Node node, long from, long to, UpgradeContext ctx) {
    if (to >= SINCE) return "";
    long[] axes = axes(node, ctx).orElseThrow();
    float epsilon = node.attrFloat("epsilon", 1e-5f);
    Value x = node.input(0);
    Value mean = add(ctx, node, "ReduceMean", "mean", List.of(x), List.of(Attr.ints("axes", axes), Attr.of("keepdims", 1L)));
    Value d = add(ctx, node, "Sub", "centered", List.of(x, mean), List.of());
    Value sq = add(ctx, node, "Pow", "squared", List.of(d, ctx.floatScalar(node, "two", 2f)), List.of());
    Value var = add(ctx, node, "ReduceMean", "variance", List.of(sq), List.of(Attr.ints("axes", axes), Attr.of("keepdims", 1L)));
    Value ve = add(ctx, node, "Add", "variance_eps", List.of(var, ctx.floatScalar(node, "epsilon", epsilon)), List.of());
    Value sd = add(ctx, node, "Sqrt", "std", List.of(ve), List.of());
    Value y = add(ctx, node, "Div", "normalized", List.of(d, sd), List.of());
    y = add(ctx, node, "Mul", "scaled", List.of(y, node.input(1)), List.of());
    if (node.hasInput(2)) y = add(ctx, node, "Add", "shifted", List.of(y, node.input(2)), List.of());
    List<Value> replacements = new ArrayList<>();
    replacements.add(y);
    for (int i = 1; i < node.outputs().size(); i++) replacements.add(null);
    ctx.replaceNode(node, replacements);
    return "decomposed into ReduceMean/Sub/Pow/Sqrt/Div/Mul/Add (LayerNormalization needs opset 17)";
  }

  private static Value add(UpgradeContext ctx, Node base, String op, String suffix, List<Value> in, List<Attr> attrs) {
    Node n = new Node("", op, in, List.of(ctx.freshValueName(base, suffix)), attrs, ctx.nodeName(base, op + "_" + suffix));
    ctx.insertBefore(base, n);
    return n.output();
  }

  /** The normalised axes, counted from the back when the rank is unknown. */
  private static Optional<long[]> axes(Node node, UpgradeContext ctx) {
    long axis = node.attrLong("axis", -1);
    if (axis < 0) {
      long[] a = new long[(int) -axis];
      for (int i = 0; i < a.length; i++) a[i] = axis + i;
      return Optional.of(a);
    }
    OptionalInt rank = ctx.rank(node.input(0));
    if (rank.isEmpty()) return Optional.empty();
    long[] a = new long[(int) (rank.getAsInt() - axis)];
    for (int i = 0; i < a.length; i++) a[i] = axis + i;
    return Optional.of(a);
  }
}
