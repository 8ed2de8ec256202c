package dev.graft.rewrite.peft;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Model;
import dev.graft.rewrite.ModulePass;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry.Entry;
import dev.graft.rewrite.discover.Module;
import java.util.List;

/**
 * What the Houlsby, Pfeiffer and parallel adapter passes share: one {@link BottleneckAdapter} per
 * targeted attention or feed-forward block, on the block's output. The passes differ only in
 * their method name, which blocks they accept and the adapter's form, so those are the
 * constructor's arguments and the subclasses keep just their documentation and public name.
 */
abstract class BlockAdapterPass extends ModulePass<Module> {
  private final String method;
  private final BottleneckAdapter.Config config;
  private final boolean attention;
  private final BottleneckAdapter.Form form;

  /**
   * @param attention whether attention blocks are candidates too (feed-forward blocks always are)
   */
  BlockAdapterPass(
      Targets targets, BottleneckAdapter.Config config, String method, boolean attention, BottleneckAdapter.Form form) {
    super(targets);
    this.method = method;
    this.config = config;
    this.attention = attention;
    this.form = form;
  }

  public BottleneckAdapter.Config config() {
    return config;
  }

  @Override
  public String name() {
    return method;
  }

  @Override
  protected List<Module> candidates(ImmutableList<Module> modules) {
    return BottleneckAdapter.blocks(modules, attention, true);
  }

  @Override
  protected String kindDescription() {
    return attention ? "attention or feed-forward" : "feed-forward";
  }

  @Override
  protected String describe(Module t) {
    // Only the parallel form uses the scale, so only it reports one.
    String scale = form == BottleneckAdapter.Form.PARALLEL ? ",s=" + config.scale() : "";
    return method + "(" + config.describe() + scale + ") " + t.name();
  }

  @Override
  protected long parameters(Module t) {
    return config.parameters(BottleneckAdapter.blockWidth(t));
  }

  @Override
  protected List<Entry> apply(Model model, Module t) {
    // The sequential form reads the block's output itself, so it needs no input value.
    return BottleneckAdapter.attach(
        model, method, t.name(), "", form,
        form == BottleneckAdapter.Form.PARALLEL ? BottleneckAdapter.blockInput(t) : null,
        BottleneckAdapter.blockOutput(t), BottleneckAdapter.blockWidth(t), config);
  }
}
