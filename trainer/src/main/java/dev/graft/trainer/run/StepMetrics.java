package dev.graft.trainer.run;

import com.google.gson.JsonObject;

/**
 * One step line of {@code metrics.jsonl}: {@code {"type":"step","step":17,"epoch":1,"loss":0.61,
 * "lr":0.002,"size":32}}. Epoch lines have no {@code type}.
 *
 * @param step the optimizer step, 1-based over the whole run
 * @param epoch the epoch the step belongs to
 * @param loss the batch's training loss
 * @param learningRate the rate the step used
 * @param size the batch's examples (the last batch of an epoch may be smaller)
 */
public record StepMetrics(long step, int epoch, double loss, double learningRate, int size) {
  public static final String TYPE = "step";

  public JsonObject toJson() {
    JsonObject o = new JsonObject();
    o.addProperty("type", TYPE);
    o.addProperty("step", step);
    o.addProperty("epoch", epoch);
    o.addProperty("loss", loss);
    o.addProperty("lr", learningRate);
    o.addProperty("size", size);
    return o;
  }

  public static StepMetrics fromJson(JsonObject o) {
    return new StepMetrics(
        o.get("step").getAsLong(),
        o.get("epoch").getAsInt(),
        o.get("loss").getAsDouble(),
        o.get("lr").getAsDouble(),
        o.has("size") ? o.get("size").getAsInt() : 1);
  }

  static boolean isStepLine(JsonObject o) {
    return o.has("type") && TYPE.equals(o.get("type").getAsString());
  }
}
