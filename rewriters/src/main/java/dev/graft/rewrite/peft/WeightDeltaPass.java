package dev.graft.rewrite.peft;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Constants;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.rewrite.ConfiguredPass;
import dev.graft.rewrite.GraftTags;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry.Entry;
import dev.graft.rewrite.discover.LinearModule;
import dev.graft.rewrite.discover.Module;
import dev.graft.rewrite.discover.ModuleKind;
import java.util.List;

/**
 * The shared shape of methods that add a weight delta computed from their own parameters alone
 * (VeRA, LoHa, LoKr): the delta goes on the weight path, so it reads constants only and folds
 * ({@link dev.graft.rewrite.method.Fold.Constants}): the exporter evaluates {@code W + ΔW} once
 * and it replaces W.
 *
 * <pre>
 *   y = MatMul(x, W)                  =>  y = MatMul(x, Add(W, ΔW))         ΔW [in, out]
 *   y = Gemm(x, W, b, transB=1)       =>  y = Gemm(x, Add(W, Transpose(ΔW)), b)
 * </pre>
 *
 * A subclass builds ΔW in the {@code [in, out]} layout from parameters it adds, and must make it
 * exactly zero at initialisation, so the adapted model computes what the original did.
 */
public abstract class WeightDeltaPass<C extends Record> extends ConfiguredPass<LinearModule, C> {
  protected WeightDeltaPass(String method, Targets targets, C config) {
    super(method, targets, config);
  }

  /** ΔW and the trainables it reads. */
  protected record Delta(Value value, List<Entry> entries) {}

  /**
   * Builds ΔW {@code [in, out]} for {@code t} with {@code b} (placed before the linear; tag each
   * node with {@link #tag}).
   */
  protected abstract Delta delta(Model model, GraphBuilder b, LinearModule t);

  /** Whether the method can adapt a linear of these sizes (a Kronecker factor must divide them). */
  protected boolean fits(LinearModule t) {
    return true;
  }

  @Override
  protected List<LinearModule> candidates(ImmutableList<Module> modules) {
    return modules.stream()
        .filter(m -> m instanceof LinearModule l && l.kind() == ModuleKind.LINEAR)
        .map(m -> (LinearModule) m)
        .filter(l -> Constants.valueOf(GraftTags.origin(l.weight())).map(w -> w.dims().length == 2).orElse(false))
        .filter(l -> !l.node().is("Gemm") || l.node().attrLong("transA", 0) == 0)
        .filter(this::fits)
        .toList();
  }

  @Override
  protected String kindDescription() {
    return "linear with a constant 2-D weight";
  }

  @Override
  protected final List<Entry> apply(Model model, LinearModule t) {
    Graph g = model.graph();
    Node linear = t.node();
    boolean transposed = linear.is("Gemm") && linear.attrLong("transB", 0) == 1;
    GraphBuilder b = GraphBuilder.on(g).before(linear).prefix("/graft/" + name() + "/" + t.name());
    Delta d = delta(model, b, t);
    Value delta = d.value();
    if (transposed) delta = tag(b, t, "transpose", "Transpose", delta);
    Value w = linear.input(1);
    b.op("Add", w, delta);
    Node merge = GraftTags.tag(b.lastNode(), name(), t.name(), GraftTags.MERGE);
    linear.setInput(1, merge.output());
    return d.entries();
  }

  /** Adds {@code op} on {@code inputs}, tagged with this method, {@code t}'s name and {@code role}. */
  protected Value tag(GraphBuilder b, LinearModule t, String role, String op, Value... inputs) {
    Value v = b.op(op, inputs);
    GraftTags.tag(b.lastNode(), name(), t.name(), role);
    return v;
  }
}
