package dev.graft.ir.infer;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableSortedMultiset;

/**
 * What a {@link ShapeInference} run did.
 *
 * @param opset the default-domain opset the rules followed
 * @param typedValues values whose type the run set or made more specific, in visit order (names;
 *     subgraph values included)
 * @param unknownOps op types (as {@code domain:op} outside the default domain) that no rule knows,
 *     counted per node; their outputs kept whatever type they had
 * @param untypedValues node outputs that still have no known rank after the run
 */
public record InferenceReport(
    long opset,
    ImmutableList<String> typedValues,
    ImmutableSortedMultiset<String> unknownOps,
    ImmutableList<String> untypedValues) {

  /** True when every op was known and every node output has a known rank. */
  public boolean isComplete() {
    return unknownOps.isEmpty() && untypedValues.isEmpty();
  }

  @Override
  public String toString() {
    return "InferenceReport(opset "
        + opset
        + ", "
        + typedValues.size()
        + " values typed, unknown ops "
        + unknownOps.elementSet()
        + ", "
        + untypedValues.size()
        + " values without a rank)";
  }
}
