package dev.graft.trainer.eval;

import com.google.gson.GsonBuilder;
import com.google.gson.JsonObject;
import java.util.Optional;

/**
 * What {@code graft eval} reports: the classification metrics of the evaluated data and, when a
 * second dataset was given as out-of-distribution, how well MSP and energy detect it.
 */
public record EvalReport(ClassificationMetrics classification, Optional<OodMetrics> ood) {
  /**
   * One object: the fields of {@link ClassificationMetrics#toJsonObject()} ({@code accuracy},
   * {@code macroF1}, ...) and, when present, {@code ood} ({@link OodMetrics#toJsonObject()}).
   */
  public JsonObject toJsonObject() {
    JsonObject o = classification.toJsonObject();
    ood.ifPresent(m -> o.add("ood", m.toJsonObject()));
    return o;
  }

  public String toJson() {
    return new GsonBuilder().disableHtmlEscaping().create().toJson(toJsonObject());
  }

  @Override
  public String toString() {
    return classification + ood.map(m -> System.lineSeparator() + m).orElse("");
  }
}
