package dev.graft.rewrite.peft;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Model;
import dev.graft.rewrite.ModulePass;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry.Entry;
import dev.graft.rewrite.discover.Module;
import java.util.List;

/**
 * Parallel adapters (He et al. 2022): a bottleneck adapter beside a frozen block, reading the
 * block's input and adding its scaled result to the block's output before the residual add.
 *
 * <pre>
 *   y = OP(x)  =>  y = Add(OP(x), Mul(up(act(down(x))), s))       OP = attention or feed-forward
 * </pre>
 *
 * Targets are block names: {@code layer.*.ffn} (the usual choice) or {@code layer.*.attention};
 * x is the hidden state the block's first linears read. See {@link BottleneckAdapter}; s is the
 * config's scale.
 */
public final class ParallelAdapterPass extends ModulePass<Module> {
  public static final String METHOD = "parallel-adapter";

  private final BottleneckAdapter.Config config;

  public ParallelAdapterPass(Targets targets, BottleneckAdapter.Config config) {
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
    return METHOD + "(" + config.describe() + ",s=" + config.scale() + ") " + t.name();
  }

  @Override
  protected long parameters(Module t) {
    return config.parameters(BottleneckAdapter.blockWidth(t));
  }

  @Override
  protected List<Entry> apply(Model model, Module t) {
    return BottleneckAdapter.attach(
        model, METHOD, t.name(), "", BottleneckAdapter.Form.PARALLEL, BottleneckAdapter.blockInput(t),
        BottleneckAdapter.blockOutput(t), BottleneckAdapter.blockWidth(t), config);
  }
}
