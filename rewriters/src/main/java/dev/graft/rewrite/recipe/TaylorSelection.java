package dev.graft.rewrite.recipe;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Model;
import dev.graft.rewrite.GraphPass;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.discover.LinearModule;
import dev.graft.rewrite.discover.Module;
import dev.graft.rewrite.discover.ModuleDiscovery;
import dev.graft.rewrite.peft.TaylorChannelPass;
import java.util.List;
import java.util.Map;

/**
 * A Taylor channel selection deferred to training time: which linear modules to score, what share
 * of their output channels to keep, and on how many training batches. A recipe writes it as
 *
 * <pre>
 *   - method: taylor-channels
 *     select: {targets: "layer.*.ffn.down", fraction: 0.125, batches: 8}
 * </pre>
 *
 * The channels depend on the data and on the model as the stage before trained it, so a recipe
 * cannot list them and rewriters cannot compute them (they never import the trainer). The trainer
 * resolves the selection: it scores the {@link #modules} of the current model
 * ({@code TaylorScores}), keeps the top {@link #fraction} of each, and runs {@link #pass} with the
 * chosen lists.
 *
 * <p>It is a {@link GraphPass} only so that the {@code taylor-channels} factory can return it;
 * {@link Recipe} lifts it out of the stage's passes into {@link Stage#taylor()}. Run as a pass it
 * refuses, saying what to do instead.
 *
 * @param targets the linear modules to score
 * @param fraction the share of each module's output channels kept, in (0, 1]
 * @param batches how many training batches the scores sum over
 * @param initStd the init of the channel deltas (0: start at the trained model)
 * @param seed seeds that init
 */
public record TaylorSelection(Targets targets, double fraction, int batches, double initStd, long seed)
    implements GraphPass {
  /** The top eighth, as in the two-stage paradigm (and {@code TaylorScores.DEFAULT_FRACTION}). */
  public static final double DEFAULT_FRACTION = 1.0 / 8;

  public static final int DEFAULT_BATCHES = 8;

  /** The keys of the nested {@code select:} map; a schema only, never built as a method. */
  static final PassFactory SCHEMA =
      PassFactory.targeted(
          "the modules to score and how many of their channels to keep",
          "**",
          List.of("fraction", "batches"),
          o -> {
            throw new IllegalStateException("select: is read by the taylor-channels factory, not built");
          });

  public TaylorSelection {
    checkArgument(fraction > 0 && fraction <= 1, "option 'fraction' must be in (0, 1], got %s", fraction);
    checkArgument(batches >= 1, "option 'batches' must be at least 1, got %s", batches);
    checkArgument(initStd >= 0, "option 'init-std' must not be negative, got %s", initStd);
  }

  /** Reads {@code select:}; {@code select} holds the nested map's options. */
  static TaylorSelection read(PassOptions select, double initStd, long seed) {
    if (!select.has(PassFactory.TARGETS)) {
      throw select.error(
          "option 'targets' is required: the linear modules whose channels to score, e.g. layer.*.ffn.down");
    }
    try {
      return new TaylorSelection(
          select.targets(),
          select.number("fraction", DEFAULT_FRACTION),
          select.integer("batches", DEFAULT_BATCHES),
          initStd,
          seed);
    } catch (IllegalArgumentException e) {
      if (e.getMessage() != null && e.getMessage().startsWith(select.where())) throw e;
      throw select.error(e.getMessage());
    }
  }

  /**
   * The names of the linear and ungrouped conv modules of {@code model} the targets select, in
   * discovery order; an error listing those modules when none matches.
   */
  public ImmutableList<String> modules(Model model) {
    List<LinearModule> linears =
        ModuleDiscovery.discover(model).stream()
            .filter(TaylorChannelPass::tunable)
            .map(m -> (LinearModule) m)
            .toList();
    return targets.select(linears, TaylorChannelPass.METHOD, TaylorChannelPass.KINDS).stream()
        .map(Module::name)
        .collect(ImmutableList.toImmutableList());
  }

  /** The channel pass for the chosen channels, with this selection's init. */
  public TaylorChannelPass pass(Map<String, ? extends List<Integer>> channels) {
    return new TaylorChannelPass(TaylorChannelPass.Config.of(channels).withInit(initStd, seed));
  }

  @Override
  public String name() {
    return TaylorChannelPass.METHOD;
  }

  @Override
  public PassResult run(Model model) {
    throw unresolved();
  }

  @Override
  public PassResult dryRun(Model model) {
    throw unresolved();
  }

  private IllegalStateException unresolved() {
    return new IllegalStateException(
        "taylor-channels with 'select' (" + targets.describe() + ", top " + fraction + ") picks its channels by"
            + " Taylor scores on training data, so it runs inside training: use graft train (or"
            + " TextClassificationRun with Recipe.stages()). To rewrite without training, list the"
            + " channels with 'channels:' instead.");
  }
}
