package dev.graft.rewrite;

import dev.graft.rewrite.discover.Module;

/**
 * A {@link ModulePass} of a named method with a settings record: what LoRA, DoRA, Conv-LoRA, VeRA,
 * LoHa, LoKr and prefix tuning each wrote out by hand (the name the registry and recipes use, the targets, the
 * settings and their accessor). A subclass passes all three to the constructor and writes only
 * what is its own: candidates, parameter count, change line and the rewrite.
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
}
