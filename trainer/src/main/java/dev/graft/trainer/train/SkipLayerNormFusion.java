package dev.graft.trainer.train;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Dim;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Shape;
import dev.graft.ir.Value;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Fuses a transformer's residual Add (and the dense layer's bias Add before it) into the
 * LayerNormalization that reads it, as one {@code com.microsoft} SkipLayerNormalization, in the
 * training copy only (the forward model, and so the export, keep their standard ops):
 *
 * <pre>
 *   h = Add(m, bias);  s = Add(h, r);  y = LayerNormalization[axis=-1, eps](s, gamma, beta)
 *     =>  y, _, _, s = com.microsoft.SkipLayerNormalization[eps](m, r, gamma, beta, bias)
 * </pre>
 *
 * (without the bias when the residual's operands are not a bias Add). ORT fuses the same pattern
 * for inference, but not in a train-step graph, whose LayerNormalization also gives its Mean and
 * InvStdDev to the backward pass; and its CPU SkipLayerNormalization kernel runs at about a
 * quarter of the time of its LayerNormalization kernel on the same rows (ORT 1.29: 0.9 ms against
 * 4.5 ms for 32 x 64 x 384 floats), besides doing both Adds in the same pass. The CPU kernel does
 * not write the optional mean and inverse-deviation outputs, so the fused node exposes the sum
 * {@code s} (its fourth output) instead and the gradient rule ({@code
 * NormalizationRules.skipLayerNormalization}) recomputes the row statistics from it: two small
 * reductions against a whole LayerNorm kernel.
 *
 * <p>A candidate is fused only when the kernel accepts it: float32, normalisation over the last
 * axis of a rank-2 or rank-3 value (stash type float), both Add operands of the same known shape
 * (or, for a rank-3 sum, one of them without the batch axis or with batch 1, which the kernel
 * broadcasts: the embeddings' position term), gamma, beta and bias one-dimensional, and no intermediate value used elsewhere or a graph
 * output. The fused node takes the LayerNormalization's name, and its first output keeps the old
 * output's name and type. The model gains the import {@code com.microsoft} version 1 when
 * something is fused.
 */
public final class SkipLayerNormFusion {
  private SkipLayerNormFusion() {}

  private record Match(Node norm, Node residual, Node biasAdd, Value input, Value skip, Value bias) {}

  /** Fuses every candidate; returns the names of the SkipLayerNormalization nodes made. */
  public static ImmutableList<String> fuse(Model m) {
    Graph g = m.graph();
    ImmutableList.Builder<String> fused = ImmutableList.builder();
    for (Node norm : List.copyOf(g.nodes())) {
      if (!norm.isIn(g) || !norm.is("LayerNormalization") || !norm.domain().isEmpty()) continue;
      Match match = match(norm);
      if (match != null) fused.add(rewrite(g, match));
    }
    ImmutableList<String> names = fused.build();
    if (!names.isEmpty()) GeluFusion.importDomain(m);
    return names;
  }

  private static Match match(Node norm) {
    if (norm.outputs().size() != 1 || norm.attrLong("stash_type", 1) != 1) return null;
    Value s = norm.input(0);
    Shape shape = s.shape().orElse(null);
    if (shape == null || (shape.rank() != 2 && shape.rank() != 3)) return null;
    if (s.dataType().orElse(null) != DataType.FLOAT) return null;
    long axis = norm.attrLong("axis", -1);
    if (axis != -1 && axis != shape.rank() - 1) return null;
    Dim hidden = shape.dim(shape.rank() - 1);
    if (!vector(norm.input(1), hidden) || (norm.inputCount() > 2 && norm.input(2) != null && !vector(norm.input(2), hidden))) {
      return null;
    }
    Node residual = s.producer().orElse(null);
    if (residual == null || !residual.is("Add") || !residual.domain().isEmpty() || !onlyFeeds(s, norm)) return null;
    Value a = residual.input(0);
    Value b = residual.input(1);
    // The kernel broadcasts a skip of batch 1 (or without a batch axis) over the input's batch:
    // the embeddings' position term is one.
    boolean aFull = sameKnownShape(a, shape);
    boolean bFull = sameKnownShape(b, shape);
    if (!aFull && !(bFull && batchFree(a, shape)) || !bFull && !(aFull && batchFree(b, shape))) return null;
    List<Value> inputSides = aFull && bFull ? List.of(a, b) : List.of(aFull ? a : b);
    // The dense layer's bias Add on an input side: Add(m, bias) or Add(bias, m), m shaped like s.
    for (Value side : inputSides) {
      Node p = side.producer().orElse(null);
      if (p == null || !p.is("Add") || !p.domain().isEmpty() || !onlyFeeds(side, residual)) continue;
      for (int i = 0; i < 2; i++) {
        Value bias = p.input(i);
        Value full = p.input(1 - i);
        if (vector(bias, hidden) && sameKnownShape(full, shape)) {
          return new Match(norm, residual, p, full, side == a ? b : a, bias);
        }
      }
    }
    Value input = inputSides.get(0);
    return new Match(norm, residual, null, input, input == a ? b : a, null);
  }

  private static String rewrite(Graph g, Match m) {
    Node norm = m.norm;
    Value y = norm.output();
    String name = y.name();
    String nodeName = norm.name().isEmpty() ? g.freshName("SkipLayerNormalization") : norm.name();
    List<Value> inputs = new ArrayList<>();
    inputs.add(m.input);
    inputs.add(m.skip);
    inputs.add(norm.input(1));
    Value beta = norm.inputCount() > 2 ? norm.input(2) : null;
    if (beta != null || m.bias != null) inputs.add(beta);
    if (m.bias != null) inputs.add(m.bias);
    Value sum = m.residual.output();
    Node skip =
        new Node(
            GeluFusion.DOMAIN,
            "SkipLayerNormalization",
            inputs,
            List.of(g.freshName(name + "_skipln"), "", "", g.freshName(sum.name() + "_skipsum")),
            List.of(Attr.of("epsilon", norm.attrFloat("epsilon", 1e-5f))),
            nodeName);
    g.insertBefore(norm, skip);
    skip.output(3).setTypeOf(sum);
    List<Node> dead = new ArrayList<>(List.of(norm, m.residual));
    if (m.biasAdd != null) dead.add(m.biasAdd);
    g.replaceValue(y, skip.output(0), dead);
    return nodeName;
  }

  /** A float32 one-dimensional value of size {@code hidden} (gamma, beta, a bias). */
  private static boolean vector(Value v, Dim hidden) {
    if (v == null || v.dataType().orElse(null) != DataType.FLOAT) return false;
    Optional<Shape> s = v.shape();
    return s.isPresent() && s.get().rank() == 1 && known(s.get().dim(0)) && s.get().dim(0).equals(hidden);
  }

  private static boolean sameKnownShape(Value v, Shape want) {
    if (v.dataType().orElse(null) != DataType.FLOAT) return false;
    Shape s = v.shape().orElse(null);
    if (s == null || s.rank() != want.rank()) return false;
    for (int i = 0; i < s.rank(); i++) {
      if (!known(s.dim(i)) || !s.dim(i).equals(want.dim(i))) return false;
    }
    return true;
  }

  /** Shaped like {@code want} without its batch axis: [1, S, H] or [S, H] against [B, S, H]. */
  private static boolean batchFree(Value v, Shape want) {
    if (want.rank() != 3 || v.dataType().orElse(null) != DataType.FLOAT) return false;
    Shape s = v.shape().orElse(null);
    if (s == null || (s.rank() != 2 && s.rank() != 3)) return false;
    if (s.rank() == 3 && !s.dim(0).equals(Dim.of(1))) return false;
    for (int i = 1; i <= 2; i++) {
      Dim d = s.dim(s.rank() - i);
      if (!known(d) || !d.equals(want.dim(3 - i))) return false;
    }
    return true;
  }

  private static boolean known(Dim d) {
    return d instanceof Dim.Fixed || d instanceof Dim.Symbolic;
  }

  private static boolean onlyFeeds(Value v, Node user) {
    return !v.isGraphOutput() && !v.uses().isEmpty() && v.uses().stream().allMatch(u -> u.node() == user);
  }
}
