package dev.graft.rewrite;

/**
 * A {@link PlannedPass} of a named method with a settings record, for the methods that find their
 * own sites instead of adapting discovered modules one by one (the heads, prompt tuning, VPT,
 * CoDA's layers, U-Tuning's operations): the name and the settings with their accessor, which
 * each wrote out by hand. {@link ConfiguredPass} is the same for module passes.
 *
 * @param <C> the method's settings (a record with its defaults)
 */
public abstract class ConfiguredPlannedPass<C extends Record> implements PlannedPass {
  private final String method;
  protected final C config;

  protected ConfiguredPlannedPass(String method, C config) {
    this.method = method;
    this.config = config;
  }

  /** The pass's name, as recipes write it. */
  @Override
  public final String name() {
    return method;
  }

  public C config() {
    return config;
  }
}
