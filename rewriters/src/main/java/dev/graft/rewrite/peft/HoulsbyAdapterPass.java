package dev.graft.rewrite.peft;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Model;
import dev.graft.rewrite.ModulePass;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry.Entry;
import dev.graft.rewrite.discover.Module;
import java.util.List;

/**
 * Houlsby adapters (Houlsby et al. 2019): a bottleneck adapter after the attention output
 * projection and another after the feed-forward down projection, each before its residual add,
 * so two per layer.
 *
 * <pre>
 *   y = output_dense(context)               =>  y = Add(y, up(act(down(y))))      (attention)
 *   y = down(act(up(h)))                    =>  y = Add(y, up'(act'(down'(y))))   (feed-forward)
 *   then, unchanged: LayerNorm(Add(y, skip))
 * </pre>
 *
 * Targets are block names: {@code layer.*.attention} and {@code layer.*.ffn} ({@link
 * Targets#all()} takes both in every layer). See {@link BottleneckAdapter} for the adapter and its
 * near-identity initialisation.
 */
public final class HoulsbyAdapterPass extends ModulePass<Module> {
  public static final String METHOD = "houlsby";

  private final BottleneckAdapter.Config config;

  public HoulsbyAdapterPass(Targets targets, BottleneckAdapter.Config config) {
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
    return BottleneckAdapter.blocks(modules, true, true);
  }

  @Override
  protected String kindDescription() {
    return "attention or feed-forward";
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
