package dev.graft.rewrite;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMultiset;
import dev.graft.ir.Model;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.rewrite.discover.Module;
import dev.graft.rewrite.discover.ModuleDiscovery;
import dev.graft.ir.Node;
import dev.graft.ir.pattern.MatchResult;
import dev.graft.rewrite.discover.ModuleKind;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The shared driver of passes that adapt discovered modules one by one: discover, select the
 * targets, skip those the method already adapted (read from the {@link TrainableRegistry}, so
 * a second run is a no-op that says so), apply or plan each, record the new trainables.
 *
 * <p>Pattern, check, rewrite: {@link #candidates} is the pattern (the modules of the pass's kind),
 * one check per module answers a {@link MatchResult} (wrong kind, name or layer outside the
 * targets, already adapted), and {@link #apply} rewrites a match. {@link #explain} shows each
 * module's answer ({@code graft rewrite --dry-run --explain}).
 *
 * @param <M> the kind of module the pass adapts
 */
public abstract class ModulePass<M extends Module> implements PlannedPass {
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

  /**
   * Why each module was or was not selected, checked in the order the pass runs: the module's kind
   * (the candidates), the target's pattern and layers, whether this method already adapted it.
   * Also lists the graph nodes of the candidates' kinds that discovery did not take as modules
   * (a MatMul whose weight is not a constant...). Pure: the model is not changed.
   */
  public final Explanation explain(Model model) {
    ImmutableList<Module> modules = ModuleDiscovery.discover(model);
    List<M> candidateList = candidates(modules);
    Map<Module, M> candidates = byIdentity(candidateList);
    Set<String> done = TrainableRegistry.modulesOf(model, name());
    ImmutableList.Builder<String> matched = ImmutableList.builder();
    ImmutableList.Builder<Explanation.Refusal> refused = ImmutableList.builder();
    for (Module m : modules) {
      MatchResult<M> r = match(m, candidates, done);
      if (r instanceof MatchResult.Match<M> ok) {
        matched.add(ok.value().name());
      } else {
        MatchResult.NoMatch<M> no = (MatchResult.NoMatch<M>) r;
        refused.add(new Explanation.Refusal(m.name(), no.describe(), no.nearMiss(), Explanation.kind(m)));
      }
    }
    Set<ModuleKind> kinds = EnumSet.noneOf(ModuleKind.class);
    candidateList.forEach(c -> kinds.add(c.kind()));
    for (ModuleDiscovery.Refused r : ModuleDiscovery.refusedNodes(model.graph())) {
      if (kinds.isEmpty() || kinds.contains(r.kind())) {
        refused.add(new Explanation.Refusal(
            r.at().opType() + " '" + r.at().displayName() + "'", r.reason(), true, r.at().opType()));
      }
    }
    return new Explanation(name(), targets.describe(), matched.build(), refused.build());
  }

  /**
   * The check every module goes through, for the run and for {@link #explain}: a candidate of
   * the pass's kind, selected by the targets, not yet adapted by this method. A module this method
   * already adapted is a near miss the run reports as a note, not an error.
   */
  private MatchResult<M> match(Module m, Map<Module, M> candidates, Set<String> done) {
    M candidate = candidates.get(m);
    Node at = m.nodes().isEmpty() ? null : m.nodes().get(0);
    if (candidate == null) {
      return MatchResult.notThis(
          "not a " + kindDescription() + " module (it is " + Explanation.what(m) + "); " + name()
              + " adapts " + kindDescription() + " modules", at);
    }
    MatchResult<Module> t = targets.check(m);
    if (t instanceof MatchResult.NoMatch<Module> no) return no.cast();
    if (done.contains(m.name())) return MatchResult.fail("already has " + name(), at);
    return MatchResult.match(candidate);
  }

  private static <M extends Module> Map<Module, M> byIdentity(List<M> modules) {
    Map<Module, M> out = new IdentityHashMap<>();
    for (M m : modules) out.put(m, m);
    return out;
  }

  @Override
  public final PassResult execute(Model model, boolean dry) {
    WorkingModels.requireWorkingOpset(model, "Pass '" + name() + "'");
    ImmutableList<Module> modules = ModuleDiscovery.discover(model);
    List<M> candidateList = candidates(modules);
    ImmutableList<M> selected = targets.select(candidateList, name(), kindDescription());
    Map<Module, M> candidates = byIdentity(candidateList);
    Set<String> done = TrainableRegistry.modulesOf(model, name());
    ImmutableMultiset.Builder<String> changes = ImmutableMultiset.builder();
    ImmutableList.Builder<String> notes = ImmutableList.builder();
    List<TrainableRegistry.Entry> entries = new ArrayList<>();
    long params = 0;
    for (M m : selected) {
      MatchResult<M> r = match(m, candidates, done);
      if (r instanceof MatchResult.NoMatch<M> no) {
        notes.add(m.name() + ": " + no.reason());
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
