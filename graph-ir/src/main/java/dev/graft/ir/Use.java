package dev.graft.ir;

/** One use of a value: input {@code index} of {@code node}. */
public record Use(Node node, int index) {
  @Override
  public String toString() {
    return "'" + node.displayName() + "' input " + index;
  }
}
