package dev.graft.rewrite.discover;

import static dev.graft.rewrite.discover.GraphFacts.constant;
import static dev.graft.rewrite.discover.GraphFacts.floatConstant;
import static dev.graft.rewrite.discover.GraphFacts.isConstant;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.DataType;
import dev.graft.ir.Node;
import dev.graft.ir.Use;
import dev.graft.ir.Value;
import dev.graft.ir.pattern.MatchResult;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.GraftTags;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * Finds linear layers and lookups: MatMul with a constant 2-D weight and an optional bias Add,
 * Gemm, Conv, and Gather on a constant table. Names come later, from {@link ModuleDiscovery}.
 * {@link #match} says why a MatMul, Gemm or Conv is not a layer, for {@code graft rewrite --explain}.
 */
final class LinearFinder {
  private LinearFinder() {}

  /** The linear layer rooted at {@code n}, unnamed, if {@code n} is one. */
  static Optional<LinearModule> linear(Node n) {
    return match(n).matchValue();
  }

  /**
   * The linear layer rooted at {@code n}, or why {@code n} is not one: a near miss for a MatMul,
   * Gemm or Conv that fails a check (its weight is not a constant, not 2-D float), not a candidate
   * for other ops and for nodes Graft made.
   */
  static MatchResult<LinearModule> match(Node n) {
    if (GraftTags.isGraft(n)) {
      return MatchResult.notThis("made by Graft (" + GraftTags.method(n).orElse("?") + "), not the model's own", n);
    }
    if (!n.domain().isEmpty()) return MatchResult.notThis("op of domain '" + n.domain() + "'", n);
    return switch (n.opType()) {
      case "MatMul" -> matMul(n);
      case "Gemm" -> gemm(n);
      case "Conv" -> conv(n);
      default -> MatchResult.notThis(n.opType() + " is not MatMul, Gemm or Conv", n);
    };
  }

  /** Why the activation or weight of {@code n} disqualifies it; null when both are fine. */
  private static String operandProblem(Node n, Optional<Tensor> w, String wanted) {
    Value x = n.input(0);
    if (x == null || isConstant(x)) return "input 0 is a constant, so this computes a constant, not a layer";
    if (w.isPresent()) return null;
    Optional<Tensor> c = constant(n.input(1));
    if (c.isEmpty()) return "its weight (input 1) is not a constant: it multiplies two activations";
    return "its weight (input 1) is a " + c.get().dataType() + " constant of shape "
        + java.util.Arrays.toString(c.get().dims()) + ", not " + wanted;
  }

  private static MatchResult<LinearModule> matMul(Node n) {
    Value x = n.input(0);
    Optional<Tensor> w = floatConstant(n.input(1), 2);
    String problem = operandProblem(n, w, "a 2-D float matrix");
    if (problem != null) return MatchResult.fail(problem, n);
    long in = w.get().dims()[0];
    long out = w.get().dims()[1];
    return MatchResult.match(withBiasAdd(n, x, null, in, out).get());
  }

  /**
   * The linear module of {@code n} (x [.., in] to [.., out], weight at input 1). Without a {@code
   * bias} of its own, an Add that alone reads n's output and adds a float constant of {@code out}
   * elements is taken as its bias. Shared by MatMul here and MatMulNBits in {@link DecoderFinder}.
   */
  static Optional<LinearModule> withBiasAdd(Node n, Value x, Value bias, long in, long out) {
    Value result = GraftTags.throughMerges(n.output());
    Node biasAdd = null;
    Optional<Use> reader = GraphFacts.onlyReader(result);
    if (bias == null && reader.isPresent() && reader.get().node().is("Add") && result.uses().size() == 1) {
      Node add = reader.get().node();
      Value other = add.input(1 - reader.get().index());
      Optional<Tensor> b = constant(other);
      if (b.isPresent() && b.get().dataType() == DataType.FLOAT && b.get().numElements() == out
          && b.get().dims().length <= 1) {
        biasAdd = add;
        bias = GraftTags.origin(other);
        result = GraftTags.throughMerges(add.output());
      }
    }
    ImmutableList<Node> nodes = biasAdd == null ? ImmutableList.of(n) : ImmutableList.of(n, biasAdd);
    return Optional.of(
        new LinearModule(
            "", ModuleKind.LINEAR, OptionalInt.empty(), n, n.input(1), Optional.ofNullable(bias),
            biasAdd, x, result, in, out, nodes));
  }

  private static MatchResult<LinearModule> gemm(Node n) {
    Value x = n.input(0);
    Optional<Tensor> w = floatConstant(n.input(1), 2);
    String problem = operandProblem(n, w, "a 2-D float matrix");
    if (problem != null) return MatchResult.fail(problem, n);
    if (n.attrLong("transA", 0) != 0) return MatchResult.fail("transA=1 (a transposed activation) is not a linear layer", n);
    boolean transB = n.attrLong("transB", 0) != 0;
    long[] d = w.get().dims();
    long in = transB ? d[1] : d[0];
    long out = transB ? d[0] : d[1];
    Value bias = n.input(2) == null ? null : GraftTags.origin(n.input(2));
    return MatchResult.match(
        new LinearModule(
            "", ModuleKind.LINEAR, OptionalInt.empty(), n, n.input(1), Optional.ofNullable(bias),
            null, x, GraftTags.throughMerges(n.output()), in, out, ImmutableList.of(n)));
  }

  private static MatchResult<LinearModule> conv(Node n) {
    Value x = n.input(0);
    Optional<Tensor> w = constant(n.input(1)).filter(t -> t.dims().length >= 3);
    String problem = operandProblem(n, w, "a kernel of rank 3 or more");
    if (problem != null) return MatchResult.fail(problem, n);
    long[] d = w.get().dims();
    long group = n.attrLong("group", 1);
    Value bias = n.input(2) == null ? null : GraftTags.origin(n.input(2));
    return MatchResult.match(
        new LinearModule(
            "", ModuleKind.CONV, OptionalInt.empty(), n, n.input(1), Optional.ofNullable(bias),
            null, x, GraftTags.throughMerges(n.output()), d[1] * group, d[0], ImmutableList.of(n)));
  }

  /** An embedding lookup rooted at {@code n}, unnamed, if {@code n} is one. */
  static Optional<EmbeddingModule> embedding(Node n) {
    if (!n.is("Gather") || GraftTags.isGraft(n) || n.attrLong("axis", 0) != 0) {
      return Optional.empty();
    }
    Optional<Tensor> table = floatConstant(n.input(0), 2);
    if (table.isEmpty() || n.input(1) == null || isConstant(n.input(1))) return Optional.empty();
    long[] d = table.get().dims();
    return Optional.of(
        new EmbeddingModule("", n, n.input(0), n.input(1), d[0], d[1], ImmutableList.of(n)));
  }
}
