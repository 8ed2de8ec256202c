package dev.graft.rewrite.discover;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Node;
import java.util.OptionalInt;

/**
 * A feed-forward block: {@code down(activation(up(x)))}.
 *
 * @param activation the nodes between the two linears (one Gelu or Relu, or the exporter's
 *     decomposed Erf form: Div, Erf, Add, Mul, Mul)
 */
public record FeedForwardModule(
    String name,
    OptionalInt layer,
    LinearModule up,
    LinearModule down,
    ImmutableList<Node> activation,
    ImmutableList<Node> nodes)
    implements Module {

  @Override
  public ModuleKind kind() {
    return ModuleKind.FFN;
  }

  /** The activation's op types in order, e.g. [Div, Erf, Add, Mul, Mul] or [Relu]. */
  public ImmutableList<String> activationOps() {
    return activation.stream().map(Node::opType).collect(ImmutableList.toImmutableList());
  }
}
