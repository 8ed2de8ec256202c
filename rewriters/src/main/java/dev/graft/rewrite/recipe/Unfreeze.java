package dev.graft.rewrite.recipe;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableSet;
import dev.graft.rewrite.TrainableRegistry;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Gradual unfreezing (ULMFiT's "gradual unfreezing", the "incremental layer defrosting" protocol),
 * a recipe option: the trainables the passes made train top-down, {@code layers-per-epoch} more
 * transformer layers each epoch, as a schedule of the training loop, not a graph change.
 *
 * <pre>
 *   unfreeze:
 *     layers-per-epoch: 1      # default 1
 *
 *   epoch 1: the head (and anything outside the layers) + the top layer's trainables
 *   epoch 2: + the layer below ...        after the bottom layer: + the embeddings' trainables
 * </pre>
 *
 * A trainable's layer is read from its module name ({@code layer.N....}); modules named
 * {@code embeddings...} sit below layer 0; every other module (a head, a soft prompt) trains from
 * the first epoch. The trainer applies it through its per-epoch trainable schedule.
 *
 * @param layersPerEpoch how many more layers each epoch unfreezes
 */
public record Unfreeze(int layersPerEpoch) {
  public static final String KEY = "unfreeze";
  private static final String LAYERS_PER_EPOCH = "layers-per-epoch";
  private static final Pattern LAYER = Pattern.compile("^layer\\.(\\d+)(\\..*)?$");

  public Unfreeze {
    if (layersPerEpoch < 1) throw new IllegalArgumentException("unfreeze: layers-per-epoch must be 1 or more, got " + layersPerEpoch);
  }

  /** Reads the recipe's {@code unfreeze:} value: {@code true}, or a map with {@code layers-per-epoch}. */
  static Unfreeze read(String where, Object value) {
    if (Boolean.TRUE.equals(value)) return new Unfreeze(1);
    if (value instanceof Map<?, ?> m) {
      for (Object k : m.keySet()) {
        if (!ImmutableSet.of(LAYERS_PER_EPOCH).contains(k)) {
          throw new IllegalArgumentException(where + ": unknown key '" + k + "' in '" + KEY + "'; valid keys are " + LAYERS_PER_EPOCH + ".");
        }
      }
      Object n = m.get(LAYERS_PER_EPOCH);
      if (n == null) return new Unfreeze(1);
      if (n instanceof Integer i && i >= 1) return new Unfreeze(i);
      throw new IllegalArgumentException(where + ": '" + KEY + "." + LAYERS_PER_EPOCH + "' must be an integer of 1 or more, got " + n + ".");
    }
    throw new IllegalArgumentException(
        where + ": '" + KEY + "' must be true or a map such as {" + LAYERS_PER_EPOCH + ": 1}, got " + value + ".");
  }

  /** The layer of a module for unfreezing: N for {@code layer.N...}, -1 for embeddings, empty for the rest. */
  static OptionalInt layerOf(String module) {
    Matcher m = LAYER.matcher(module);
    if (m.matches()) return OptionalInt.of(Integer.parseInt(m.group(1)));
    if (module.startsWith("embeddings")) return OptionalInt.of(-1);
    return OptionalInt.empty();
  }

  /**
   * The initializers to train in {@code epoch} (1-based), in recorded order: entries outside the
   * layers always; a layer's entries once {@code epoch · layersPerEpoch} layers from the top are
   * unfrozen.
   */
  public ImmutableList<String> trainables(int epoch, List<TrainableRegistry.Entry> entries) {
    int top = entries.stream().mapToInt(e -> layerOf(e.module()).orElse(-1)).max().orElse(-1);
    int lowest = top - epoch * layersPerEpoch + 1;
    ImmutableList.Builder<String> out = ImmutableList.builder();
    for (TrainableRegistry.Entry e : entries) {
      OptionalInt layer = layerOf(e.module());
      if (layer.isEmpty() || layer.getAsInt() >= lowest) out.add(e.initializer());
    }
    return out.build();
  }
}
