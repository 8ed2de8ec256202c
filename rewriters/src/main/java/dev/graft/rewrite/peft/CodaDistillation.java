package dev.graft.rewrite.peft;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Use;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.rewrite.GraftTags;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * CoDA's light training phase (Lei et al. 2023, section 3.4) in graph form: before task
 * fine-tuning, the CoDA model (routers and adapters trainable, backbone frozen) learns to
 * reproduce the dense model's own hidden states on unlabelled text. The frozen dense model runs in
 * the same graph, as a teacher copy of the layers:
 *
 * <pre>
 *   student:  x_0 ─► CoDA layer 0 ─► ... ─► h            (the model as rewritten, dense soft form)
 *   teacher:  x_0 ─► L_0 ─► L_1 ─► ... ─► h_dense         copies of the frozen layers, CoDA nodes left out
 *   residual = (h - h_dense) · mask                       [batch, n, width], padding zeroed
 *   loss     = mean(residual²)                            (the task's mean squared error against zeros)
 * </pre>
 *
 * The teacher is a copy of every node on a path from the first CoDA layer's input to the hidden
 * output, except CoDA's own nodes; where a node reads a CoDA layer's output, its copy reads the
 * teacher's copy of the frozen layer's output instead. It shares the frozen weights and reads no
 * trainable parameter, so autodiff gives it no backward pass. {@link #strip} removes it again
 * before the model is saved.
 */
public final class CodaDistillation {
  /** The objective's output: the masked difference of the hidden states. */
  public static final String RESIDUAL = "coda_distill_residual";

  private CodaDistillation() {}

  /**
   * Adds the teacher and the output {@value #RESIDUAL} to {@code model} (a training copy).
   *
   * @param hidden the hidden-state output to match (e.g. last_hidden_state)
   * @param maskInput the attention-mask input (1 = token), or "" for none
   * @return the residual output
   */
  public static Value addResidual(Model model, String hidden, String maskInput) {
    ImmutableList<CodaLayers.Layer> layers = CodaLayers.read(model);
    checkArgument(
        !layers.isEmpty(),
        "CoDA distillation needs a model rewritten with the coda method (no '%s' metadata). Add 'method: coda' to the recipe.",
        CodaLayers.KEY);
    checkArgument(
        !"sparse".equals(model.metadata().get(CodaSparseForm.FORM_KEY)),
        "CoDA distillation trains the dense form; this model is the sparse export. Distil the tuned model instead.");
    Graph g = model.graph();
    Value h = g.value(hidden).filter(Value::isGraphOutput).orElseThrow(
        () -> new IllegalArgumentException(
            "CoDA distillation matches the output '" + hidden + "', which the model does not have; its outputs are "
                + g.outputs().stream().map(Value::name).toList() + "."));
    Value start = g.valueOrThrow(layers.get(0).input());
    Map<Value, Value> heavyOf = new IdentityHashMap<>();
    for (CodaLayers.Layer l : layers) heavyOf.put(g.valueOrThrow(l.output()), g.valueOrThrow(l.heavy()));

    // Nodes reachable from the first CoDA input and leading to h, without CoDA's own nodes.
    Set<Node> forward = new HashSet<>();
    ArrayDeque<Value> todo = new ArrayDeque<>();
    todo.add(start);
    while (!todo.isEmpty()) {
      for (Use u : todo.pop().uses()) {
        if (forward.add(u.node())) for (Value o : u.node().outputs()) if (o != null) todo.push(o);
      }
    }
    Set<Node> backward = new HashSet<>();
    ArrayDeque<Node> up = new ArrayDeque<>();
    h.producer().ifPresent(up::add);
    while (!up.isEmpty()) {
      Node n = up.pop();
      if (!backward.add(n)) continue;
      for (Value in : n.inputs()) if (in != null) in.producer().ifPresent(up::push);
    }
    List<Node> copy = new ArrayList<>();
    for (Node n : g.nodes()) {
      if (forward.contains(n) && backward.contains(n) && !CodaPass.METHOD.equals(GraftTags.method(n).orElse(""))) copy.add(n);
    }
    Map<Value, Value> teacher = new IdentityHashMap<>();
    for (Node n : copy) {
      List<Value> inputs = new ArrayList<>();
      for (Value in : n.inputs()) inputs.add(in == null ? null : teacherOf(in, teacher, heavyOf));
      List<String> outs = new ArrayList<>();
      for (Value o : n.outputs()) outs.add(o == null ? "" : g.freshName(o.name() + "_teacher"));
      String name = g.freshName((n.name().isEmpty() ? "/graft/coda/teacher/" + n.opType() : n.name()) + "_teacher");
      Node c = new Node(n.rawDomain(), n.opType(), inputs, outs, List.copyOf(n.attributes().values()), name);
      g.addNode(c);
      GraftTags.tag(c, CodaPass.METHOD, "teacher", "teacher");
      for (int i = 0; i < n.outputs().size(); i++) if (n.output(i) != null) teacher.put(n.output(i), c.output(i));
    }
    Value dense = teacherOf(h, teacher, heavyOf);
    checkArgument(dense != h, "CoDA distillation: the output '%s' does not depend on the CoDA layers", hidden);

    int before = g.nodeCount();
    GraphBuilder b = GraphBuilder.on(g).atEnd().prefix("/graft/coda/distill");
    Value residual = b.op("Sub", h, dense);
    Value mask = g.inputs().stream().filter(v -> v.name().equals(maskInput)).findFirst().orElse(null);
    if (mask != null) {
      Value m = b.op("Cast", List.of(mask), Attr.of("to", (long) DataType.FLOAT.code()));
      residual = b.op("Mul", residual, b.op("Reshape", m, b.int64s(0, 0, 1)));
    }
    Value out = b.output(RESIDUAL, residual);
    for (Node n : g.nodes().subList(before, g.nodeCount())) GraftTags.tag(n, CodaPass.METHOD, "teacher", "residual");
    out.setTypeOf(h);
    return out;
  }

  private static Value teacherOf(Value v, Map<Value, Value> teacher, Map<Value, Value> heavyOf) {
    Value heavy = heavyOf.get(v);
    if (heavy != null) return teacherOf(heavy, teacher, heavyOf);
    return teacher.getOrDefault(v, v);
  }

  /** Removes {@value #RESIDUAL} and the teacher from {@code model}, leaving the CoDA model. */
  public static void strip(Model model) {
    Graph g = model.graph();
    g.value(RESIDUAL).filter(Value::isGraphOutput).ifPresent(g::removeOutput);
    boolean again = true;
    while (again) {
      again = false;
      List<Node> nodes = new ArrayList<>(g.nodes());
      for (int i = nodes.size() - 1; i >= 0; i--) {
        Node n = nodes.get(i);
        if (!"teacher".equals(GraftTags.module(n).orElse("")) || !CodaPass.METHOD.equals(GraftTags.method(n).orElse(""))) continue;
        boolean dead = n.outputs().stream().allMatch(o -> o == null || (!o.hasUses() && !o.isGraphOutput()));
        if (dead) {
          g.removeNode(n);
          again = true;
        }
      }
    }
  }
}
