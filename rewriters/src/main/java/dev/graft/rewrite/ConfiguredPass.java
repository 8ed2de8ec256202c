package dev.graft.rewrite;

import dev.graft.rewrite.discover.Module;

/**
 * A {@link ModulePass} of a named method with a settings record: what LoRA, DoRA, Conv-LoRA, VeRA,
 * LoHa, LoKr and prefix tuning each wrote out by hand (the name the registry and recipes use, the targets, the
 * settings and their accessor, and the rank in each change line). A subclass passes all three to
 * the constructor and writes only what is its own: candidates, parameter count and the rewrite.
 * {@link ConfiguredPlannedPass} is the same for passes that find their own sites.
 *
 * @param <M> the kind of module the pass adapts
 * @param <C> the method's settings (a record with its defaults)
 */
public abstract class ConfiguredPass<M extends Module, C extends Record> extends ModulePass<M> {
  private final String method;
  protected final C config;

  protected ConfiguredPass(String method, Targets targets, C config) {
    super(targets);
    this.method = method;
    this.config = config;
  }

  /** The method's name, as recipes write it and the trainable registry records it. */
  @Override
  public final String name() {
    return method;
  }

  public C config() {
    return config;
  }

  /** Settings with a rank r, which each change line shows. */
  public interface Ranked {
    int rank();
  }

  /** {@code "lora(r=8) layer.0.attention.query"} for ranked settings, else the method and the module. */
  @Override
  protected String describe(M target) {
    return config instanceof Ranked r ? name() + "(r=" + r.rank() + ") " + target.name() : super.describe(target);
  }
}
