package dev.graft.trainer.run;

import com.google.gson.JsonObject;

/**
 * One line of {@code metrics.jsonl}: what an epoch of training reached.
 *
 * @param epoch 1-based, counting on across the stages of a multi-stage recipe
 * @param stage the recipe stage the epoch trained, 1-based (1 for a plain recipe)
 * @param trainLoss mean training loss over the epoch's steps
 * @param testAccuracy accuracy on the held-out split after the epoch
 * @param testMacroF1 macro-F1 on the held-out split
 * @param testLoss mean loss on the held-out split
 * @param seconds wall time of the epoch (training and evaluation)
 * @param examplesPerSecond training throughput
 */
public record EpochMetrics(
    int epoch,
    int stage,
    double trainLoss,
    double testAccuracy,
    double testMacroF1,
    double testLoss,
    double seconds,
    double examplesPerSecond) {

  public JsonObject toJson() {
    JsonObject o = new JsonObject();
    o.addProperty("epoch", epoch);
    o.addProperty("stage", stage);
    o.addProperty("train_loss", trainLoss);
    o.addProperty("test_accuracy", testAccuracy);
    o.addProperty("test_macro_f1", testMacroF1);
    o.addProperty("test_loss", testLoss);
    o.addProperty("seconds", seconds);
    o.addProperty("examples_per_second", examplesPerSecond);
    return o;
  }

  public static EpochMetrics fromJson(JsonObject o) {
    return new EpochMetrics(
        o.get("epoch").getAsInt(),
        // Runs from before stages were written have one stage.
        o.has("stage") ? o.get("stage").getAsInt() : 1,
        o.get("train_loss").getAsDouble(),
        o.get("test_accuracy").getAsDouble(),
        o.get("test_macro_f1").getAsDouble(),
        o.get("test_loss").getAsDouble(),
        o.get("seconds").getAsDouble(),
        o.get("examples_per_second").getAsDouble());
  }
}
