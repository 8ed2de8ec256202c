package dev.graft.rewrite.peft;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Constants;
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
import dev.graft.rewrite.method.Fold;
import dev.graft.rewrite.method.PeftMethod;
import java.util.List;

/**
 * BatchNorm-affine tuning, the CNN analogue of LayerNorm tuning: the scale and shift of each
 * chosen BatchNormalization train through deltas that start at zero; the running mean and
 * variance stay frozen (inference-mode BatchNorm, as in the papers' linear-probe-plus-affine
 * baselines).
 *
 * <pre>
 *   y = BatchNormalization(x, scale, bias, mean, var)
 *     => y = BatchNormalization(x, Mul(scale, Add(dscale, 1)), Add(bias, dbias), mean, var)
 * </pre>
 *
 * Both merge nodes read constants only, so the exporter folds them into the original scale and
 * bias (initializers or Constant nodes alike) and the merged graph has the base's op census.
 */
public final class BatchNormAffinePass extends ModulePass<NormModule> {
  public static final String METHOD = "batchnorm-affine";

  /** The method: no options; default targets every BatchNormalization. */
  public static final PeftMethod DEFINITION =
      PeftMethod.targeted(
          METHOD,
          "BatchNorm-affine: the scale and shift of each targeted BatchNormalization train through zero-initialised deltas",
          "**",
          List.of(),
          o -> new BatchNormAffinePass(o.targets()),
          Fold.constants());

  public BatchNormAffinePass(Targets targets) {
    super(targets);
  }

  @Override
  public String name() {
    return METHOD;
  }

  @Override
  protected List<NormModule> candidates(ImmutableList<Module> modules) {
    return modules.stream()
        .filter(m -> m instanceof NormModule n && n.style() == NormModule.Style.BATCH_NORMALIZATION)
        .map(m -> (NormModule) m)
        .toList();
  }

  @Override
  protected String kindDescription() {
    return "BatchNormalization";
  }

  @Override
  protected long parameters(NormModule t) {
    return t.features() * 2;
  }

  @Override
  protected List<Entry> apply(Model model, NormModule t) {
    Graph g = model.graph();
    String module = t.name();
    Use scale = t.scaleUse();
    Value dscale = Splice.initializer(g, module + ".bn_dscale", zerosLike(t.gamma()));
    GraphBuilder b = GraphBuilder.on(g).before(scale.node()).prefix("/graft/" + METHOD + "/" + module);
    Value onePlus = b.op("Add", dscale, b.scalar(1f));
    tag(b.lastNode(), module, "one_plus_dscale");
    b.op("Mul", scale.node().input(scale.index()), onePlus);
    Node scaleMerge = tag(b.lastNode(), module, GraftTags.MERGE);
    scale.node().setInput(scale.index(), scaleMerge.output());

    Use shift = t.shiftUse();
    Value dbias = Splice.initializer(g, module + ".bn_dbias", zerosLike(t.beta()));
    b.op("Add", shift.node().input(shift.index()), dbias);
    Node shiftMerge = tag(b.lastNode(), module, GraftTags.MERGE);
    shift.node().setInput(shift.index(), shiftMerge.output());
    return List.of(
        new Entry(dscale.name(), METHOD, module, "dscale"), new Entry(dbias.name(), METHOD, module, "dbias"));
  }

  private static Tensor zerosLike(Value v) {
    Tensor t = Constants.valueOf(v).orElseThrow(
        () -> new IllegalStateException("BatchNormalization parameter '" + v.name() + "' is not a constant"));
    return DenseTensor.ofFloats(null, t.dims(), new float[Math.toIntExact(t.numElements())]);
  }

  private static Node tag(Node n, String module, String role) {
    return GraftTags.tag(n, METHOD, module, role);
  }
}
