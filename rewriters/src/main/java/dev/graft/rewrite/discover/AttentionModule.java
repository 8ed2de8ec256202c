package dev.graft.rewrite.discover;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Node;
import java.util.OptionalInt;

/**
 * Scaled dot-product attention, as exporters write it:
 *
 * <pre>
 *   q, k, v  = linear(h)                          query, key, value
 *   qh, kh, vh = Transpose(Reshape(q|k|v))         headSplit
 *   scores   = MatMul(qh, kh^T) / sqrt(d) + mask   scoreMatMul, maskAdd
 *   context  = MatMul(Softmax(scores), vh)         softmax, contextMatMul
 *   out      = linear(Reshape(Transpose(context)))  headMerge, output
 * </pre>
 *
 * @param maskAdd the Add that applies the attention mask to the scores, or null
 * @param numHeads the head count, when the split reshape states it as a constant
 */
public record AttentionModule(
    String name,
    OptionalInt layer,
    LinearModule query,
    LinearModule key,
    LinearModule value,
    LinearModule output,
    Node scoreMatMul,
    Node softmax,
    Node contextMatMul,
    Node maskAdd,
    ImmutableList<Node> headSplit,
    ImmutableList<Node> headMerge,
    OptionalInt numHeads,
    ImmutableList<Node> nodes)
    implements Module {

  @Override
  public ModuleKind kind() {
    return ModuleKind.ATTENTION;
  }
}
