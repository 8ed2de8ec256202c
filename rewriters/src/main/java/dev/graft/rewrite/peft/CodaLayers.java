package dev.graft.rewrite.peft;

import com.google.common.collect.ImmutableList;
import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonParseException;
import com.google.gson.reflect.TypeToken;
import dev.graft.ir.Model;
import java.util.ArrayList;
import java.util.List;

/**
 * What {@link CodaPass} records in the model's metadata (key {@value #KEY}) about each layer it
 * adapted, by value and node names, so that {@link CodaSparseForm} can turn the dense training
 * form into the sparse inference form of a saved, trained model without re-parsing the subgraph.
 */
public final class CodaLayers {
  public static final String KEY = "graft.coda";
  private static final Gson GSON = new GsonBuilder().create();

  private CodaLayers() {}

  /**
   * One adapted layer.
   *
   * @param module the layer's name, {@code layer.N}
   * @param input x, the stream entering the layer
   * @param heavy L(x), the frozen layer's output on every token
   * @param output the CoDA layer's output (the merge Add of the dense form)
   * @param light A(x), the adapter's output
   * @param scores the router's scores [batch, n]
   * @param valid the bool padding mask [batch, n], or "" for none
   * @param lambda the soft top-k weights [batch, n]
   * @param k the int64 scalar k
   * @param keyValueNodes the nodes that project keys and values and bring them to the attention
   *     matmuls: the sparse form keeps them on all n tokens
   */
  public record Layer(
      String module,
      String input,
      String heavy,
      String output,
      String light,
      String scores,
      String valid,
      String lambda,
      String k,
      List<String> keyValueNodes) {}

  /** The recorded layers, in the order they were adapted; empty when none. */
  public static ImmutableList<Layer> read(Model m) {
    String json = m.metadata().get(KEY);
    if (json == null || json.isBlank()) return ImmutableList.of();
    try {
      List<Layer> layers = GSON.fromJson(json, new TypeToken<List<Layer>>() {}.getType());
      return ImmutableList.copyOf(layers);
    } catch (JsonParseException e) {
      throw new IllegalArgumentException(
          "Model metadata '" + KEY + "' is not the CoDA layer list (" + e.getMessage() + "). Rewrite the model from its base.", e);
    }
  }

  static void write(Model m, List<Layer> layers) {
    if (layers.isEmpty()) {
      m.removeMetadata(KEY);
    } else {
      m.putMetadata(KEY, GSON.toJson(layers));
    }
  }

  static void add(Model m, List<Layer> layers) {
    List<Layer> all = new ArrayList<>(read(m));
    all.addAll(layers);
    write(m, all);
  }
}
