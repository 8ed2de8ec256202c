package dev.graft.rewrite.recipe;

import com.google.common.collect.ImmutableSet;
import dev.graft.rewrite.GraphPass;
import java.util.List;
import java.util.Optional;
import java.util.function.Function;

/**
 * How one recipe method becomes a pass: the options an entry of that method may hold and the
 * function that reads them. A targeted method also takes {@code targets} and {@code layers}, and
 * adapts {@link #defaultTargets} when the entry names none.
 *
 * @param summary one line for help texts and error messages
 * @param defaultTargets the module glob used when an entry gives no {@code targets}; empty for
 *     methods that take no targets (a classification head, a soft prompt)
 * @param options the method's own option keys, in the order help texts list them
 * @param build makes the pass; reads options only through {@link PassOptions}
 */
public record PassFactory(
    String summary,
    Optional<String> defaultTargets,
    ImmutableSet<String> options,
    Function<PassOptions, GraphPass> build) {

  public static final String METHOD = "method";
  public static final String TARGETS = "targets";
  public static final String LAYERS = "layers";
  /** The default targets of the low-rank methods (LoRA, DoRA, VeRA, LoHa, LoKr): the attention's query and value. */
  public static final String QUERY_VALUE = "layer.*.attention.{query,value}";

  /** A method that adapts the modules its targets select ({@code defaultTargets} when none). */
  public static PassFactory targeted(
      String summary, String defaultTargets, List<String> options, Function<PassOptions, GraphPass> build) {
    return new PassFactory(summary, Optional.of(defaultTargets), ImmutableSet.copyOf(options), build);
  }

  /** A method that takes no targets. */
  public static PassFactory untargeted(String summary, List<String> options, Function<PassOptions, GraphPass> build) {
    return new PassFactory(summary, Optional.empty(), ImmutableSet.copyOf(options), build);
  }

  public boolean isTargeted() {
    return defaultTargets.isPresent();
  }

  /** Every key an entry of this method may hold: method, targets and layers if targeted, options. */
  public ImmutableSet<String> keys() {
    ImmutableSet.Builder<String> b = ImmutableSet.<String>builder().add(METHOD);
    if (isTargeted()) b.add(TARGETS, LAYERS);
    return b.addAll(options).build();
  }
}
