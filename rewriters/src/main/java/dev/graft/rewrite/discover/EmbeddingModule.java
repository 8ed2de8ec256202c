package dev.graft.rewrite.discover;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import java.util.OptionalInt;

/** A lookup {@code Gather(table, ids)} in a constant [rows, dim] table. */
public record EmbeddingModule(
    String name, Node gather, Value table, Value indices, long rows, long dim, ImmutableList<Node> nodes)
    implements Module {

  @Override
  public ModuleKind kind() {
    return ModuleKind.EMBEDDING;
  }

  @Override
  public OptionalInt layer() {
    return OptionalInt.empty();
  }
}
