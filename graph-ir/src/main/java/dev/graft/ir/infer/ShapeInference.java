package dev.graft.ir.infer;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableSortedMultiset;
import com.google.common.collect.TreeMultiset;
import dev.graft.ir.DataType;
import dev.graft.ir.Dim;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Shape;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.TopologicalOrder;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * Shape and type inference over the IR: sets {@link Value#setType} on every node output whose
 * type follows from the graph inputs, initializers and attributes, recursing into subgraphs.
 *
 * <p>Each op family's reasoning is one {@link ShapeRule} in {@link ShapeRules#RULES}; this class
 * does the shared work once: visiting nodes in topological order, tracking the known contents of
 * small integer tensors (so shape arithmetic folds, see {@link SymbolicTensor}), and merging each
 * inferred type with the type the value already has. Merging keeps the more specific of the two
 * per dim (fixed over symbolic over unknown), so inference never forgets what value_info said;
 * a fixed dim that contradicts an inferred fixed dim is an error naming node, value and both
 * types. Ops without a rule leave their outputs as they were and are listed in the report.
 *
 * <p>Inference only: the graph's nodes, edges and initializers are not touched; typed
 * intermediate values are listed in value_info ({@link Graph#addValueInfo}) so that a save keeps
 * them.
 */
public final class ShapeInference {
  private final long opset;
  private final Map<String, ShapeRule> rules;
  private final Map<Value, SymbolicTensor> contents = new IdentityHashMap<>();
  private final LinkedHashSet<String> typed = new LinkedHashSet<>();
  private final TreeMultiset<String> unknownOps = TreeMultiset.create();

  private ShapeInference(long opset, Map<String, ShapeRule> rules) {
    this.opset = opset;
    this.rules = rules;
  }

  /** Infers the model's main graph under its default-domain opset. */
  public static InferenceReport infer(Model m) {
    long opset =
        m.defaultOpset()
            .orElseThrow(
                () ->
                    new IllegalArgumentException(
                        "Model imports no default-domain opset; shape inference needs one. Call"
                            + " model.setOpset(\"\", N) first."));
    return infer(m.graph(), opset);
  }

  /** Infers {@code g} (and its subgraphs) under default-domain opset {@code opset}. */
  public static InferenceReport infer(Graph g, long opset) {
    ShapeInference run = new ShapeInference(opset, ShapeRules.RULES);
    run.inferGraph(g);
    List<String> untyped = new ArrayList<>();
    for (Node n : g.allNodes()) {
      for (Value v : n.outputs()) {
        if (v != null && v.shape().isEmpty() && !v.type().map(t -> !(t instanceof Type.TensorType)).orElse(false)) {
          untyped.add(v.name());
        }
      }
    }
    return new InferenceReport(
        opset,
        ImmutableList.copyOf(run.typed),
        ImmutableSortedMultiset.copyOf(run.unknownOps),
        ImmutableList.copyOf(untyped));
  }

  long opset() {
    return opset;
  }

  // ---- the walk -------------------------------------------------------------------------------

  void inferGraph(Graph g) {
    for (Node n : topologicalOrder(g)) {
      inferNode(n);
    }
  }

  private void inferNode(Node n) {
    ShapeRule rule = n.domain().isEmpty() ? rules.get(n.opType()) : null;
    if (rule == null) {
      unknownOps.add(n.domain().isEmpty() ? n.opType() : n.domain() + ":" + n.opType());
      // Still type what can be typed inside: subgraph values that do not depend on this node.
      for (Graph sub : n.subgraphs()) inferGraph(sub);
      return;
    }
    try {
      rule.infer(new InferenceContext(n, this));
    } catch (ShapeInferenceException e) {
      throw e;
    } catch (RuntimeException e) {
      throw new ShapeInferenceException(
          "Shape inference failed at node '"
              + n.displayName()
              + "' ("
              + n.opType()
              + "): "
              + e.getMessage()
              + ". Check the node's inputs and attributes.",
          e);
    }
  }

  /**
   * Nodes in the house's one topological order ({@link TopologicalOrder#lenient}): producers
   * first, stored order where it already is one; nodes on a cycle (an invalid graph) come last in
   * stored order rather than being dropped.
   */
  private static List<Node> topologicalOrder(Graph g) {
    return TopologicalOrder.lenient(g);
  }

  // ---- contents ---------------------------------------------------------------------------------

  Optional<SymbolicTensor> contents(Value v) {
    SymbolicTensor c = contents.get(v);
    if (c != null) return Optional.of(c);
    // An initializer that is also a graph input can be overridden at run time: not a constant.
    if (v.isInitializer() && !v.isGraphInput()) {
      Optional<SymbolicTensor> t = SymbolicTensor.fromTensor(v.initializer().get());
      t.ifPresent(x -> contents.put(v, x));
      return t;
    }
    return Optional.empty();
  }

  void putContents(Value v, SymbolicTensor c) {
    contents.put(v, c);
  }

  // ---- merging types ----------------------------------------------------------------------------

  /** Sets {@code v}'s type to the merge of what it had and {@code inferred}. */
  void assign(Node n, Value v, Type inferred) {
    Type existing = v.type().orElse(null);
    Type merged;
    if (existing == null || existing instanceof Type.UnsetType) {
      merged = inferred;
    } else if (existing instanceof Type.TensorType e && inferred instanceof Type.TensorType i) {
      merged = mergeTensor(n, v, e, i);
    } else {
      merged = existing; // Sequences, maps, optionals: keep what was declared.
    }
    if (merged.equals(existing)) return;
    v.setType(merged);
    typed.add(v.name());
    if (v.isAttached() && v.producer().isPresent() && !v.isGraphOutput()) v.graph().addValueInfo(v);
  }

  private static Type.TensorType mergeTensor(
      Node n, Value v, Type.TensorType existing, Type.TensorType inferred) {
    DataType elem = existing.elementType();
    if (elem == null || elem == DataType.UNDEFINED) {
      elem = inferred.elementType();
    } else if (inferred.elementType() != null
        && inferred.elementType() != DataType.UNDEFINED
        && inferred.elementType() != elem) {
      throw conflict(n, v, existing, inferred, "element type " + elem + " vs " + inferred.elementType());
    }
    Optional<Shape> shape;
    if (existing.shape().isEmpty()) {
      shape = inferred.shape();
    } else if (inferred.shape().isEmpty()) {
      shape = existing.shape();
    } else {
      Shape es = existing.shape().get();
      Shape is = inferred.shape().get();
      if (es.rank() != is.rank()) {
        throw conflict(n, v, existing, inferred, "rank " + es.rank() + " vs " + is.rank());
      }
      List<Dim> dims = new ArrayList<>(es.rank());
      for (int d = 0; d < es.rank(); d++) {
        Optional<Dim> m = Dims.merge(es.dim(d), is.dim(d));
        if (m.isEmpty()) {
          throw conflict(n, v, existing, inferred, "dim " + d + ": " + es.dim(d) + " vs " + is.dim(d));
        }
        dims.add(m.get());
      }
      shape =
          Optional.of(
              es.denotations().isEmpty() ? Shape.of(dims) : Shape.withDenotations(dims, es.denotations()));
    }
    return new Type.TensorType(elem, shape, existing.denotation());
  }

  private static ShapeInferenceException conflict(
      Node n, Value v, Type.TensorType declared, Type.TensorType inferred, String what) {
    return new ShapeInferenceException(
        "Shape inference: node '"
            + n.displayName()
            + "' ("
            + n.opType()
            + ") gives '"
            + v.name()
            + "' type "
            + inferred
            + ", but it is declared "
            + declared
            + " ("
            + what
            + "). Fix the declared type (value_info, graph output or subgraph input) or the"
            + " inputs that lead to this node.");
  }

}
