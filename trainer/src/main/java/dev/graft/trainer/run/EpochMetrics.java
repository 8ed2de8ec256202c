package dev.graft.trainer.run;

import com.google.common.collect.ImmutableMap;
import com.google.gson.JsonObject;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One epoch line of {@code metrics.jsonl}: what an epoch of training reached.
 *
 * @param epoch 1-based, counting on across the stages of a multi-stage recipe
 * @param stage the recipe stage the epoch trained, 1-based (1 for a plain recipe)
 * @param trainLoss mean training loss over the epoch's steps
 * @param testLoss mean loss on the held-out data
 * @param test the task's held-out metrics, headline first ({@code accuracy}, {@code macro_f1} for
 *     classification; written as {@code test_accuracy}, ...)
 * @param seconds wall time of the epoch (training and evaluation)
 * @param examplesPerSecond training throughput
 */
public record EpochMetrics(
    int epoch,
    int stage,
    double trainLoss,
    double testLoss,
    ImmutableMap<String, Double> test,
    double seconds,
    double examplesPerSecond) {

  /** The classification accuracy, or NaN for a task that does not report it. */
  public double testAccuracy() {
    return test("accuracy");
  }

  /** The classification macro-F1, or NaN for a task that does not report it. */
  public double testMacroF1() {
    return test("macro_f1");
  }

  /** The held-out {@code metric}, NaN when the task does not report it. */
  public double test(String metric) {
    return test.getOrDefault(metric, Double.NaN);
  }

  /** The name of the task's first (headline) metric. */
  public String headline() {
    return test.isEmpty() ? "loss" : test.keySet().iterator().next();
  }

  public JsonObject toJson() {
    JsonObject o = new JsonObject();
    o.addProperty("epoch", epoch);
    o.addProperty("stage", stage);
    o.addProperty("train_loss", trainLoss);
    o.addProperty("test_loss", testLoss);
    for (Map.Entry<String, Double> e : test.entrySet()) o.addProperty("test_" + e.getKey(), e.getValue());
    o.addProperty("seconds", seconds);
    o.addProperty("examples_per_second", examplesPerSecond);
    return o;
  }

  public static EpochMetrics fromJson(JsonObject o) {
    Map<String, Double> test = new LinkedHashMap<>();
    for (String key : o.keySet()) {
      if (key.startsWith("test_") && !key.equals("test_loss")) test.put(key.substring(5), o.get(key).getAsDouble());
    }
    return new EpochMetrics(
        o.get("epoch").getAsInt(),
        // Runs from before stages were written have one stage.
        o.has("stage") ? o.get("stage").getAsInt() : 1,
        o.get("train_loss").getAsDouble(),
        o.get("test_loss").getAsDouble(),
        ImmutableMap.copyOf(test),
        o.get("seconds").getAsDouble(),
        o.get("examples_per_second").getAsDouble());
  }
}
