package dev.graft.rewrite;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMultiset;
import dev.graft.ir.Model;
import dev.graft.rewrite.discover.Module;
import dev.graft.rewrite.discover.ModuleDiscovery;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * The shared driver of passes that adapt discovered modules one by one: discover, select the
 * targets, skip those the method already adapted (read from the {@link TrainableRegistry}, so
 * a second run is a no-op that says so), apply or plan each, record the new trainables.
 *
 * @param <M> the kind of module the pass adapts
 */
public abstract class ModulePass<M extends Module> implements GraphPass {
  protected final Targets targets;

  protected ModulePass(Targets targets) {
    this.targets = targets;
  }

  /** The modules this pass can adapt, out of everything discovered. */
  protected abstract List<M> candidates(ImmutableList<Module> modules);

  /** "linear", "norm": for messages. */
  protected abstract String kindDescription();

  /** Trainable parameters adapting {@code target} adds. */
  protected abstract long parameters(M target);

  /** Adapts {@code target}; returns the trainable initializers made. */
  protected abstract List<TrainableRegistry.Entry> apply(Model model, M target);

  /** The change line for {@code target}: {@code "lora(r=8) layer.0.attention.query"}. */
  protected String describe(M target) {
    return name() + " " + target.name();
  }

  public Targets targets() {
    return targets;
  }

  @Override
  public final PassResult run(Model model) {
    return execute(model, false);
  }

  @Override
  public final PassResult dryRun(Model model) {
    return execute(model, true);
  }

  private PassResult execute(Model model, boolean dry) {
    ImmutableList<M> selected =
        targets.select(candidates(ModuleDiscovery.discover(model)), name(), kindDescription());
    Set<String> done = TrainableRegistry.modulesOf(model, name());
    ImmutableMultiset.Builder<String> changes = ImmutableMultiset.builder();
    ImmutableList.Builder<String> notes = ImmutableList.builder();
    List<TrainableRegistry.Entry> entries = new ArrayList<>();
    long params = 0;
    for (M m : selected) {
      if (done.contains(m.name())) {
        notes.add(m.name() + ": already has " + name());
        continue;
      }
      params += parameters(m);
      changes.add(describe(m));
      if (!dry) entries.addAll(apply(model, m));
    }
    if (!dry && !entries.isEmpty()) TrainableRegistry.add(model, entries);
    return new PassResult(name(), changes.build(), params, dry, notes.build());
  }
}
