package dev.graft.rewrite.peft;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Model;
import dev.graft.rewrite.ModulePass;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry.Entry;
import dev.graft.rewrite.discover.Module;
import java.util.List;

/**
 * Pfeiffer adapters (Pfeiffer et al. 2020, AdapterFusion): one bottleneck adapter per layer,
 * after the feed-forward down projection and before its residual add.
 *
 * <pre>
 *   y = down(act(up(h)))  =>  y = Add(y, up'(act'(down'(y))));  then, unchanged: LayerNorm(Add(y, skip))
 * </pre>
 *
 * Targets are feed-forward block names ({@code layer.*.ffn}). See {@link BottleneckAdapter} for
 * the adapter and its near-identity initialisation.
 */
public final class PfeifferAdapterPass extends ModulePass<Module> {
  public static final String METHOD = "pfeiffer";

  private final BottleneckAdapter.Config config;

  public PfeifferAdapterPass(Targets targets, BottleneckAdapter.Config config) {
    super(targets);
    this.config = config;
  }

  public BottleneckAdapter.Config config() {
    return config;
  }

  @Override
  public String name() {
    return METHOD;
  }

  @Override
  protected List<Module> candidates(ImmutableList<Module> modules) {
    return BottleneckAdapter.blocks(modules, false, true);
  }

  @Override
  protected String kindDescription() {
    return "feed-forward";
  }

  @Override
  protected String describe(Module t) {
    return METHOD + "(" + config.describe() + ") " + t.name();
  }

  @Override
  protected long parameters(Module t) {
    return config.parameters(BottleneckAdapter.blockWidth(t));
  }

  @Override
  protected List<Entry> apply(Model model, Module t) {
    return BottleneckAdapter.attach(
        model, METHOD, t.name(), "", BottleneckAdapter.Form.SEQUENTIAL, null,
        BottleneckAdapter.blockOutput(t), BottleneckAdapter.blockWidth(t), config);
  }
}
