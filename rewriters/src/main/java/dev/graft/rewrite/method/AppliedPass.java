package dev.graft.rewrite.method;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMap;
import dev.graft.ir.Model;
import dev.graft.rewrite.GraphPass;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.TrainableRegistry;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A pass made from a recipe entry, which records in the model what it applied ({@link
 * AppliedMethods}: the method, the entry's options as given, the modules it adapted) when it
 * changes the model. The record is what adapter export replays.
 */
public final class AppliedPass implements GraphPass {
  private final GraphPass inner;
  private final String method;
  private final ImmutableMap<String, Object> options;

  public AppliedPass(GraphPass inner, String method, Map<String, Object> options) {
    this.inner = inner;
    this.method = method;
    this.options = ImmutableMap.copyOf(options);
  }

  /** The pass itself, for callers that need its type. */
  public GraphPass inner() {
    return inner;
  }

  /** {@code p}'s own pass when it is an AppliedPass, else {@code p}. */
  public static GraphPass unwrap(GraphPass p) {
    return p instanceof AppliedPass a ? a.inner : p;
  }

  public String method() {
    return method;
  }

  public ImmutableMap<String, Object> options() {
    return options;
  }

  @Override
  public String name() {
    return inner.name();
  }

  @Override
  public PassResult run(Model model) {
    int before = TrainableRegistry.read(model).size();
    PassResult r = inner.run(model);
    if (r.changed()) {
      // The trainables this pass added say which modules it adapted and under which name it
      // records them (the head's pass records as "head").
      List<TrainableRegistry.Entry> added = TrainableRegistry.read(model).subList(before, TrainableRegistry.read(model).size());
      Set<String> modules = new LinkedHashSet<>();
      added.forEach(e -> modules.add(e.module()));
      String pass = added.isEmpty() ? inner.name() : added.get(0).method();
      AppliedMethods.add(model, new AppliedMethods.Applied(method, pass, options, ImmutableList.copyOf(modules)));
    }
    return r;
  }

  @Override
  public PassResult dryRun(Model model) {
    return inner.dryRun(model);
  }
}
