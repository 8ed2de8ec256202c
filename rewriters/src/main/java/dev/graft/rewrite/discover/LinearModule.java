package dev.graft.rewrite.discover;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * A linear layer: {@code MatMul(x, W)} with a constant 2-D W and an optional bias {@code Add};
 * {@code Gemm(x, W, b)}; or (kind {@link ModuleKind#CONV}) {@code Conv(x, W, b)}.
 *
 * @param node the MatMul, Gemm or Conv
 * @param weight the constant weight value ([in, out] for MatMul, [out, in] for Gemm with transB,
 *     [out, in/group, kh, kw] for Conv)
 * @param bias the bias value, if any (the Add's constant, or the op's third input)
 * @param biasAdd the Add that applies the bias to a MatMul, or null
 * @param input the activation the layer reads
 * @param output the value that carries the layer's result to its readers (after the bias)
 */
public record LinearModule(
    String name,
    ModuleKind kind,
    OptionalInt layer,
    Node node,
    Value weight,
    Optional<Value> bias,
    Node biasAdd,
    Value input,
    Value output,
    long inFeatures,
    long outFeatures,
    ImmutableList<Node> nodes)
    implements Module {

  /** A copy with the given name and layer (discovery names modules last). */
  LinearModule named(String newName, OptionalInt newLayer) {
    return new LinearModule(
        newName, kind, newLayer, node, weight, bias, biasAdd, input, output, inFeatures, outFeatures, nodes);
  }

  /** Weight parameters (and bias), for reports. */
  public long parameterCount() {
    long n = weight.initializer().map(t -> t.numElements()).orElse(inFeatures * outFeatures);
    return n + bias.flatMap(Value::initializer).map(t -> t.numElements()).orElse(0L);
  }
}
