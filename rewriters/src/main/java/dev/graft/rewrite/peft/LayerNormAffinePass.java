package dev.graft.rewrite.peft;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Use;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.GraftTags;
import dev.graft.rewrite.ModulePass;
import dev.graft.rewrite.Splice;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry.Entry;
import dev.graft.rewrite.discover.Module;
import dev.graft.rewrite.discover.NormModule;
import java.util.ArrayList;
import java.util.List;

/**
 * LayerNorm-affine tuning (stage one of the two-stage paradigm; PEFT's LayerNorm tuning): the
 * scale and shift of chosen norms become trainable through deltas that start at zero and fold
 * back exactly.
 *
 * <pre>
 *   y = LayerNormalization(x, gamma, beta)
 *     => y = LayerNormalization(x, Mul(gamma, Add(dgamma, 1)), Add(beta, dbeta))
 *   y = Add(Mul(n, gamma), beta)                      (the decomposed form's tail)
 *     => y = Add(Mul(n, Mul(gamma, Add(dgamma, 1))), Add(beta, dbeta))
 * </pre>
 *
 * The frozen gamma and beta stay initializers; only dgamma and dbeta (shaped like them) train.
 * BatchNormalization's scale and bias are adapted the same way.
 */
public final class LayerNormAffinePass extends ModulePass<NormModule> {
  public static final String METHOD = "layernorm-affine";

  public LayerNormAffinePass(Targets targets) {
    super(targets);
  }

  @Override
  public String name() {
    return METHOD;
  }

  @Override
  protected List<NormModule> candidates(ImmutableList<Module> modules) {
    return modules.stream().filter(m -> m instanceof NormModule).map(m -> (NormModule) m).toList();
  }

  @Override
  protected String kindDescription() {
    return "norm";
  }

  @Override
  protected long parameters(NormModule t) {
    return t.features() * (t.shiftUse() == null ? 1 : 2);
  }

  @Override
  protected List<Entry> apply(Model model, NormModule t) {
    Graph g = model.graph();
    String module = t.name();
    List<Entry> out = new ArrayList<>();

    Use scale = t.scaleUse();
    Value dgamma = Splice.initializer(g, module + ".ln_dgamma", zerosLike(t.gamma()));
    GraphBuilder b = GraphBuilder.on(g).before(scale.node()).prefix("/graft/" + METHOD + "/" + module);
    Value onePlus = b.op("Add", dgamma, b.scalar(1f));
    tag(b.lastNode(), module, "one_plus_dgamma");
    Value current = scale.node().input(scale.index());
    b.op("Mul", current, onePlus);
    Node gammaMerge = tag(b.lastNode(), module, GraftTags.MERGE);
    scale.node().setInput(scale.index(), gammaMerge.output());
    out.add(new Entry(dgamma.name(), METHOD, module, "dgamma"));

    Use shift = t.shiftUse();
    if (shift != null) {
      Value dbeta = Splice.initializer(g, module + ".ln_dbeta", zerosLike(t.beta()));
      b.before(shift.node());
      b.op("Add", shift.node().input(shift.index()), dbeta);
      Node betaMerge = tag(b.lastNode(), module, GraftTags.MERGE);
      shift.node().setInput(shift.index(), betaMerge.output());
      out.add(new Entry(dbeta.name(), METHOD, module, "dbeta"));
    }
    return out;
  }

  private static Tensor zerosLike(Value v) {
    Tensor t = v.initializer().or(() -> dev.graft.ir.Constants.valueOf(v)).orElseThrow(
        () -> new IllegalStateException("Norm parameter '" + v.name() + "' is not a constant"));
    return DenseTensor.ofFloats(null, t.dims(), new float[Math.toIntExact(t.numElements())]);
  }

  private static Node tag(Node n, String module, String role) {
    return GraftTags.tag(n, METHOD, module, role);
  }
}
