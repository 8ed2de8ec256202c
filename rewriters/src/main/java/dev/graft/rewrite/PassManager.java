package dev.graft.rewrite;

import static com.google.common.base.Preconditions.checkState;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.ir.analysis.Verifier;
import java.util.List;
import java.util.Objects;

/**
 * Runs passes in order. After each pass it checks that the pass told the truth (a pass that
 * reports changes must have changed the graph or its metadata, and one that reports none must
 * not have) and, unless told otherwise, that the model still verifies. Passes speak the working
 * opset's dialect only: a model older than that is refused before any pass runs (load it with
 * {@link WorkingModels#load}).
 */
public final class PassManager {
  private final ImmutableList<GraphPass> passes;
  private final boolean verify;

  public PassManager(List<GraphPass> passes) {
    this(passes, true);
  }

  public PassManager(List<GraphPass> passes, boolean verify) {
    this.passes = ImmutableList.copyOf(passes);
    this.verify = verify;
  }

  public ImmutableList<GraphPass> passes() {
    return passes;
  }

  /** Runs every pass on {@code model} in place; one result per pass. */
  public ImmutableList<PassResult> run(Model model) {
    ImmutableList.Builder<PassResult> out = ImmutableList.builder();
    for (GraphPass p : passes) {
      WorkingModels.requireWorkingOpset(model, "Pass '" + p.name() + "'");
      long before = fingerprint(model);
      PassResult r = p.run(model);
      long after = fingerprint(model);
      checkState(
          r.changed() == (before != after),
          "Pass '%s' reported %s but %s the model. This is a bug in the pass.",
          p.name(),
          r.changed() ? r.changes().size() + " changes" : "no change",
          before != after ? "changed" : "did not change");
      if (verify && r.changed()) Verifier.verify(model);
      out.add(r);
    }
    return out.build();
  }

  /** What each pass would do, on the model as it is (passes do not see each other's plans). */
  public ImmutableList<PassResult> dryRun(Model model) {
    ImmutableList.Builder<PassResult> out = ImmutableList.builder();
    for (GraphPass p : passes) {
      WorkingModels.requireWorkingOpset(model, "Pass '" + p.name() + "'");
      out.add(p.dryRun(model));
    }
    return out.build();
  }

  /** A cheap summary of the graph and metadata that any edit a pass makes alters. */
  static long fingerprint(Model m) {
    long h = 17;
    for (Node n : m.graph().nodes()) {
      h = 31 * h + System.identityHashCode(n);
      for (Value v : n.inputs()) h = 31 * h + (v == null ? 0 : System.identityHashCode(v));
    }
    for (Value v : m.graph().initializers()) h = 31 * h + System.identityHashCode(v.initializer().orElse(null));
    for (Value v : m.graph().outputs()) h = 31 * h + System.identityHashCode(v);
    return 31 * h + Objects.hashCode(m.metadata());
  }
}
