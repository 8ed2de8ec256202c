package dev.graft.rewrite.discover;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Node;
import java.util.OptionalInt;

/**
 * A residual add {@code Add(branch, skip)}: {@code skip} is the stream that entered a block and
 * {@code branch} depends on it.
 *
 * @param skipIndex the Add input that carries the skip (the stream); the other is the branch
 * @param block the name of the block whose output the branch carries, or "" when unknown
 */
public record ResidualModule(
    String name, OptionalInt layer, Node add, int skipIndex, String block, ImmutableList<Node> nodes)
    implements Module {

  @Override
  public ModuleKind kind() {
    return ModuleKind.RESIDUAL;
  }

  ResidualModule named(String newName, OptionalInt newLayer, String newBlock) {
    return new ResidualModule(newName, newLayer, add, skipIndex, newBlock, nodes);
  }
}
