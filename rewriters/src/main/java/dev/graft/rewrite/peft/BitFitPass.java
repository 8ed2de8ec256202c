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
import dev.graft.rewrite.discover.LinearModule;
import dev.graft.rewrite.discover.Module;
import dev.graft.rewrite.discover.NormModule;
import java.util.List;

/**
 * BitFit (Ben Zaken et al. 2022): only the biases train, those of linear layers and the shifts
 * (beta) of normalisations. The frozen biases stay as they are; each gets a delta that starts at
 * zero and folds back exactly:
 *
 * <pre>
 *   y = Add(b, MatMul(x, W))        =>  y = Add(Add(b, db), MatMul(x, W))
 *   y = Gemm(x, W, b) / Conv(x, W, b)  =>  the same op reading Add(b, db)
 *   y = LayerNormalization(x, g, beta)  =>  y = LayerNormalization(x, g, Add(beta, dbeta))
 *   y = Add(Mul(n, g), beta)            =>  y = Add(Mul(n, g), Add(beta, dbeta))     (decomposed)
 * </pre>
 *
 * Targets are linear and norm names; {@link Targets#all()} takes every bias in the model. Linears
 * without a bias and norms without a shift are not candidates.
 */
public final class BitFitPass extends ModulePass<Module> {
  public static final String METHOD = "bitfit";

  public BitFitPass(Targets targets) {
    super(targets);
  }

  @Override
  public String name() {
    return METHOD;
  }

  @Override
  protected List<Module> candidates(ImmutableList<Module> modules) {
    return modules.stream()
        .filter(m -> (m instanceof LinearModule l && l.bias().isPresent()) || (m instanceof NormModule n && n.shiftUse() != null))
        .toList();
  }

  @Override
  protected String kindDescription() {
    return "biased linear or norm";
  }

  @Override
  protected long parameters(Module t) {
    return t instanceof NormModule n ? n.features() : ((LinearModule) t).outFeatures();
  }

  @Override
  protected List<Entry> apply(Model model, Module t) {
    Node reader;
    int index;
    Value bias;
    if (t instanceof NormModule n) {
      Use shift = n.shiftUse();
      reader = shift.node();
      index = shift.index();
      bias = n.beta();
    } else {
      LinearModule l = (LinearModule) t;
      reader = l.biasAdd() != null ? l.biasAdd() : l.node();
      index = Ia3Pass.biasIndex(reader, l);
      bias = l.bias().get();
    }
    Graph g = model.graph();
    String module = t.name();
    Value delta = Splice.initializer(g, module + ".bitfit_dbias", zerosLike(bias));
    GraphBuilder b = GraphBuilder.on(g).before(reader).prefix("/graft/" + METHOD + "/" + module);
    b.op("Add", reader.input(index), delta);
    Node merge = GraftTags.tag(b.lastNode(), METHOD, module, GraftTags.MERGE);
    reader.setInput(index, merge.output());
    return List.of(new Entry(delta.name(), METHOD, module, "dbias"));
  }

  private static Tensor zerosLike(Value v) {
    Tensor t =
        v.initializer()
            .or(() -> Constants.valueOf(v))
            .orElseThrow(() -> new IllegalStateException("Bias '" + v.name() + "' is not a constant"));
    return DenseTensor.ofFloats(null, t.dims(), new float[Math.toIntExact(t.numElements())]);
  }
}
