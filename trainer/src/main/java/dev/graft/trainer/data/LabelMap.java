package dev.graft.trainer.data;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMap;
import com.google.gson.Gson;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import java.math.BigInteger;
import java.util.Collection;
import java.util.Comparator;
import java.util.List;
import java.util.TreeSet;
import java.util.regex.Pattern;

/**
 * String labels to class ids 0..n-1. The order is a function of the label set alone, so every run
 * over the same data gets the same ids: numeric order when every label is an integer ("2" before
 * "10"), else lexicographic by code point. The map travels with the model as {@link #encode()}, a
 * JSON array of the labels in id order ({@code ["neg","pos"]}).
 */
public final class LabelMap {
  private static final Pattern INTEGER = Pattern.compile("[-+]?\\d+");
  private static final Gson GSON = new Gson();

  private final ImmutableList<String> labels;
  private final ImmutableMap<String, Integer> ids;

  private LabelMap(List<String> labels) {
    this.labels = ImmutableList.copyOf(labels);
    ImmutableMap.Builder<String, Integer> b = ImmutableMap.builder();
    for (int i = 0; i < labels.size(); i++) b.put(labels.get(i), i);
    this.ids = b.buildOrThrow();
  }

  /** The labels found in {@code labels} (duplicates allowed), sorted as the class comment says. */
  public static LabelMap of(Collection<String> labels) {
    checkArgument(!labels.isEmpty(), "no labels: the dataset is empty");
    TreeSet<String> distinct = new TreeSet<>(labels);
    boolean numeric = distinct.stream().allMatch(l -> INTEGER.matcher(l).matches());
    Comparator<String> order =
        numeric
            ? Comparator.comparing((String l) -> new BigInteger(l)).thenComparing(l -> l)
            : Comparator.naturalOrder();
    return new LabelMap(distinct.stream().sorted(order).toList());
  }

  /** The labels in the given order, which becomes their ids (class folders, IDX class names). */
  public static LabelMap ofOrdered(List<String> labels) {
    checkArgument(!labels.isEmpty(), "no labels: the dataset is empty");
    checkArgument(new TreeSet<>(labels).size() == labels.size(), "duplicate labels in %s", labels);
    return new LabelMap(labels);
  }

  /** The labels of {@code examples}. */
  public static LabelMap ofExamples(Collection<TextExample> examples) {
    return of(examples.stream().map(TextExample::label).toList());
  }

  /** The map written by {@link #encode()}; labels keep the ids they had there. */
  public static LabelMap decode(String encoded) {
    JsonElement root;
    try {
      root = JsonParser.parseString(encoded);
    } catch (JsonParseException e) {
      throw new IllegalArgumentException(
          "The label map '" + encoded + "' is not JSON; expected an array such as [\"neg\",\"pos\"].",
          e);
    }
    checkArgument(
        root.isJsonArray() && !root.getAsJsonArray().isEmpty(),
        "The label map '%s' is not a non-empty JSON array of labels.",
        encoded);
    JsonArray array = root.getAsJsonArray();
    ImmutableList.Builder<String> labels = ImmutableList.builder();
    for (JsonElement e : array) {
      checkArgument(
          e.isJsonPrimitive() && e.getAsJsonPrimitive().isString(),
          "The label map '%s' holds %s, which is not a string.",
          encoded,
          e);
      labels.add(e.getAsString());
    }
    ImmutableList<String> list = labels.build();
    checkArgument(
        new TreeSet<>(list).size() == list.size(), "The label map '%s' repeats a label.", encoded);
    return new LabelMap(list);
  }

  /** A JSON array of the labels in id order, for the model's metadata. */
  public String encode() {
    return GSON.toJson(labels);
  }

  public int size() {
    return labels.size();
  }

  /** The labels in id order. */
  public ImmutableList<String> labels() {
    return labels;
  }

  /** The class id of {@code label}. */
  public int id(String label) {
    Integer id = ids.get(label);
    if (id == null) {
      throw new IllegalArgumentException(
          "Unknown label '"
              + label
              + "'; the model knows "
              + labels
              + ". Evaluate with data labelled like the training data.");
    }
    return id;
  }

  /** The label of class {@code id}. */
  public String label(int id) {
    checkArgument(id >= 0 && id < labels.size(), "class id %s is not in [0, %s)", id, labels.size());
    return labels.get(id);
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof LabelMap other && labels.equals(other.labels);
  }

  @Override
  public int hashCode() {
    return labels.hashCode();
  }

  @Override
  public String toString() {
    return "LabelMap" + labels;
  }
}
