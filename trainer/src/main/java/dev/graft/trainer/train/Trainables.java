package dev.graft.trainer.train;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.rewrite.TrainableRegistry;
import java.util.regex.Pattern;

/**
 * Which initializers to train: those a PEFT pass recorded in the model's metadata (DESIGN.md
 * decision 7), or, for hand-made graphs, those whose names match a pattern.
 */
public final class Trainables {
  /** The metadata key the rewriters record trainables under. */
  public static final String METADATA_KEY = TrainableRegistry.KEY;

  private Trainables() {}

  /** The initializers the model's metadata marks trainable, in recorded order. */
  public static ImmutableList<String> fromMetadata(Model m) {
    ImmutableList.Builder<String> out = ImmutableList.builder();
    for (TrainableRegistry.Entry e : TrainableRegistry.read(m)) out.add(e.initializer());
    return out.build();
  }

  /** The initializers whose whole name matches {@code pattern}, in graph order. */
  public static ImmutableList<String> matching(Model m, Pattern pattern) {
    ImmutableList.Builder<String> out = ImmutableList.builder();
    for (Value v : m.graph().initializers()) {
      if (pattern.matcher(v.name()).matches()) out.add(v.name());
    }
    return out.build();
  }

  /** As {@link #matching(Model, Pattern)} with a regular expression. */
  public static ImmutableList<String> matching(Model m, String regex) {
    return matching(m, Pattern.compile(regex));
  }
}
