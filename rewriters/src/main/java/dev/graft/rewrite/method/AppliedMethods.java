package dev.graft.rewrite.method;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMap;
import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import com.google.gson.JsonPrimitive;
import dev.graft.ir.Model;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What the rewrites of a model applied, in order: each method with its options and targets as the
 * recipe gave them, and the modules it adapted. Stored in the model metadata under {@value #KEY}
 * beside the trainable records ({@code graft.trainable}), so that adapter export replays the
 * passes on a base from their options, and {@code graft inspect} shows them, instead of
 * reverse-engineering rank and alpha from tensor shapes:
 *
 * <pre>
 *   [{"method":"lora","options":{"targets":["layer.*.attention.{query,value}"],"rank":8,"alpha":16},
 *     "modules":["layer.0.attention.query", ...]}, ...]
 * </pre>
 */
public final class AppliedMethods {
  public static final String KEY = "graft.applied";
  private static final Gson GSON = new GsonBuilder().disableHtmlEscaping().create();

  /**
   * One applied method.
   *
   * @param method the recipe method
   * @param pass the name its pass records trainables under ({@code head} for classification-head)
   * @param options the entry's options as written (targets and layers included, method not)
   * @param modules the modules it adapted, in order
   */
  public record Applied(String method, String pass, ImmutableMap<String, Object> options, ImmutableList<String> modules) {}

  private AppliedMethods() {}

  /** The records of {@code m}, in the order applied; empty when none. */
  public static ImmutableList<Applied> read(Model m) {
    String json = m.metadata().get(KEY);
    if (json == null || json.isBlank()) return ImmutableList.of();
    JsonElement root;
    try {
      root = JsonParser.parseString(json);
    } catch (JsonParseException e) {
      throw new IllegalArgumentException(
          "Model metadata '" + KEY + "' is not valid JSON (" + e.getMessage() + "). Rewrite the model or remove the key.", e);
    }
    if (!root.isJsonArray()) throw new IllegalArgumentException("Model metadata '" + KEY + "' must be a JSON array, got " + root);
    ImmutableList.Builder<Applied> out = ImmutableList.builder();
    for (JsonElement e : root.getAsJsonArray()) out.add(fromJson(e));
    return out.build();
  }

  /** One record from its JSON form (as written by {@link #toJson}). */
  public static Applied fromJson(JsonElement e) {
    if (!e.isJsonObject() || !e.getAsJsonObject().has("method")) {
      throw new IllegalArgumentException("Model metadata '" + KEY + "': entry " + e + " lacks its 'method'");
    }
    JsonObject o = e.getAsJsonObject();
    Map<String, Object> options = new LinkedHashMap<>();
    if (o.has("options")) o.getAsJsonObject("options").entrySet().forEach(x -> options.put(x.getKey(), plain(x.getValue())));
    ImmutableList.Builder<String> modules = ImmutableList.builder();
    if (o.has("modules")) o.getAsJsonArray("modules").forEach(x -> modules.add(x.getAsString()));
    String method = o.get("method").getAsString();
    String pass = o.has("pass") ? o.get("pass").getAsString() : method;
    return new Applied(method, pass, ImmutableMap.copyOf(options), modules.build());
  }

  /** Appends a record. */
  public static void add(Model m, Applied a) {
    JsonArray arr = new JsonArray();
    for (Applied x : read(m)) arr.add(toJson(x));
    arr.add(toJson(a));
    m.putMetadata(KEY, GSON.toJson(arr));
  }

  /** Replaces the records; an empty list removes the key. */
  public static void write(Model m, List<Applied> all) {
    if (all.isEmpty()) {
      m.removeMetadata(KEY);
      return;
    }
    JsonArray arr = new JsonArray();
    for (Applied x : all) arr.add(toJson(x));
    m.putMetadata(KEY, GSON.toJson(arr));
  }

  public static JsonObject toJson(Applied a) {
    JsonObject o = new JsonObject();
    o.addProperty("method", a.method());
    o.addProperty("pass", a.pass());
    o.add("options", GSON.toJsonTree(a.options()));
    JsonArray mods = new JsonArray();
    a.modules().forEach(mods::add);
    o.add("modules", mods);
    return o;
  }

  /** JSON to the plain values a recipe's YAML gives: Integer or Long, Double, Boolean, String, List, Map. */
  private static Object plain(JsonElement v) {
    if (v == null || v.isJsonNull()) return null;
    if (v.isJsonArray()) {
      List<Object> out = new ArrayList<>();
      v.getAsJsonArray().forEach(x -> out.add(plain(x)));
      return out;
    }
    if (v.isJsonObject()) {
      Map<String, Object> out = new LinkedHashMap<>();
      v.getAsJsonObject().entrySet().forEach(x -> out.put(x.getKey(), plain(x.getValue())));
      return out;
    }
    JsonPrimitive p = v.getAsJsonPrimitive();
    if (p.isBoolean()) return p.getAsBoolean();
    if (p.isString()) return p.getAsString();
    String text = p.getAsString();
    if (text.contains(".") || text.contains("e") || text.contains("E")) return p.getAsDouble();
    long l = p.getAsLong();
    return l == (int) l ? (Object) (int) l : (Object) l;
  }
}
