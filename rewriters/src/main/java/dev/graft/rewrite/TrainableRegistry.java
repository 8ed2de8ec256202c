package dev.graft.rewrite;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import dev.graft.ir.Model;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * Which initializers of a rewritten model are trainable, and which method and module each belongs
 * to (DESIGN.md decision 7). Stored in the model metadata under {@value #KEY} as a JSON array, so
 * it survives save and load and {@code graft train} and {@code graft export} can run on saved
 * files:
 *
 * <pre>
 *   [{"initializer":"layer.0.attention.query.lora_A","method":"lora","module":"layer.0.attention.query","role":"A"}, ...]
 * </pre>
 */
public final class TrainableRegistry {
  public static final String KEY = "graft.trainable";
  // Compact, and names such as "a<b" stay readable in the metadata rather than "a\u003cb".
  private static final Gson GSON = new GsonBuilder().disableHtmlEscaping().create();

  /**
   * One trainable initializer.
   *
   * @param role what the tensor is within its method (A and B for LoRA, dgamma and dbeta for
   *     LayerNorm-affine, weight and bias for a head)
   */
  public record Entry(String initializer, String method, String module, String role) {
    public Entry {
      checkArgument(!initializer.isEmpty(), "a trainable entry needs an initializer name");
    }
  }

  private TrainableRegistry() {}

  /** The entries recorded in {@code m}, in order; empty when none. */
  public static ImmutableList<Entry> read(Model m) {
    String json = m.metadata().get(KEY);
    if (json == null || json.isBlank()) return ImmutableList.of();
    JsonElement root;
    try {
      root = JsonParser.parseString(json);
    } catch (JsonParseException e) {
      throw new IllegalArgumentException(
          "Model metadata '" + KEY + "' is not valid JSON (" + e.getMessage() + "). Rewrite the model or remove the key.",
          e);
    }
    if (!root.isJsonArray()) {
      throw new IllegalArgumentException("Model metadata '" + KEY + "' must be a JSON array, got " + root);
    }
    ImmutableList.Builder<Entry> out = ImmutableList.builder();
    for (JsonElement o : root.getAsJsonArray()) {
      if (!o.isJsonObject()) {
        throw new IllegalArgumentException("Model metadata '" + KEY + "' holds a non-object entry: " + o);
      }
      JsonObject e = o.getAsJsonObject();
      out.add(
          new Entry(
              str(e, "initializer"),
              str(e, "method"),
              str(e, "module"),
              e.has("role") && !e.get("role").isJsonNull() ? str(e, "role") : ""));
    }
    return out.build();
  }

  private static String str(JsonObject e, String key) {
    JsonElement v = e.get(key);
    if (v == null || !v.isJsonPrimitive() || !v.getAsJsonPrimitive().isString()) {
      throw new IllegalArgumentException(
          "Model metadata '" + KEY + "': entry " + e + " lacks the string field '" + key + "'");
    }
    return v.getAsString();
  }

  /** Replaces the recorded entries; an empty list removes the key. */
  public static void write(Model m, List<Entry> entries) {
    if (entries.isEmpty()) {
      m.removeMetadata(KEY);
      return;
    }
    JsonArray arr = new JsonArray();
    for (Entry e : entries) {
      JsonObject o = new JsonObject();
      o.addProperty("initializer", e.initializer());
      o.addProperty("method", e.method());
      o.addProperty("module", e.module());
      if (!e.role().isEmpty()) o.addProperty("role", e.role());
      arr.add(o);
    }
    m.putMetadata(KEY, GSON.toJson(arr));
  }

  /** Appends entries, keeping the existing ones. */
  public static void add(Model m, List<Entry> entries) {
    List<Entry> all = new ArrayList<>(read(m));
    all.addAll(entries);
    write(m, all);
  }

  /** Whether {@code method} already adapted {@code module} (so a second run leaves it alone). */
  public static boolean has(Model m, String method, String module) {
    return modulesOf(m, method).contains(module);
  }

  /** The modules {@code method} has already been applied to. */
  public static Set<String> modulesOf(Model m, String method) {
    Set<String> out = new LinkedHashSet<>();
    for (Entry e : read(m)) if (e.method().equals(method)) out.add(e.module());
    return out;
  }

  /** The number of trainable parameters: the elements of every recorded initializer. */
  public static long parameterCount(Model m) {
    long n = 0;
    for (Entry e : read(m)) {
      n += m.graph().initializer(e.initializer()).flatMap(v -> v.initializer()).map(t -> t.numElements()).orElse(0L);
    }
    return n;
  }
}
