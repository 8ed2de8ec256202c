package dev.graft.trainer.train;

import static com.google.common.base.Preconditions.checkArgument;

import ai.onnxruntime.OrtException;
import com.google.common.collect.ImmutableMap;
import com.google.gson.Gson;
import com.google.gson.reflect.TypeToken;
import dev.graft.ir.io.SafeTensors;
import dev.graft.ir.tensor.Tensor;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;

/**
 * Training checkpoints in safetensors: the trainable parameters under their initializer names,
 * AdamW's moments under {@code graft.adamw.m.<param>} and {@code graft.adamw.v.<param>}, and in
 * the header metadata the step, the learning-rate schedule and the optimizer's hyperparameters.
 * A trainer restored from a checkpoint takes the next step exactly as the trainer that wrote it
 * would have: the schedule's state is the step, and both the schedule and the optimizer must
 * match (they are checked, not silently replaced, since changing them mid-run changes the run).
 */
public final class Checkpoints {
  public static final String FORMAT_KEY = "graft.checkpoint";
  public static final String FORMAT_VERSION = "1";
  public static final String STEP_KEY = "graft.step";
  public static final String SCHEDULE_KEY = "graft.schedule";
  public static final String OPTIMIZER_KEY = "graft.optimizer";

  private static final Gson GSON = new Gson();

  private Checkpoints() {}

  /** What a checkpoint file holds. */
  public record Checkpoint(
      long step, Map<String, Tensor> tensors, Map<String, String> schedule, Map<String, String> optimizer) {}

  static void save(Trainer t, Path file) {
    Map<String, String> meta = new TreeMap<>();
    meta.put(FORMAT_KEY, FORMAT_VERSION);
    meta.put(STEP_KEY, Long.toString(t.step()));
    meta.put(SCHEDULE_KEY, GSON.toJson(new TreeMap<>(t.schedule().describe())));
    meta.put(OPTIMIZER_KEY, GSON.toJson(new TreeMap<>(optimizerOf(t))));
    SafeTensors.write(file, t.stateTensors(), meta);
  }

  /** Reads a checkpoint file without a trainer. */
  public static Checkpoint read(Path file) {
    SafeTensors.Contents c = SafeTensors.read(file);
    Map<String, String> meta = c.metadata();
    checkArgument(
        FORMAT_VERSION.equals(meta.get(FORMAT_KEY)),
        "'%s' is not a Graft checkpoint of format %s (its metadata '%s' is %s)",
        file,
        FORMAT_VERSION,
        FORMAT_KEY,
        meta.get(FORMAT_KEY));
    long step;
    try {
      step = Long.parseLong(meta.getOrDefault(STEP_KEY, ""));
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(
          "Checkpoint '" + file + "' has no valid step in its metadata '" + STEP_KEY + "': " + meta.get(STEP_KEY), e);
    }
    return new Checkpoint(step, c.tensors(), json(file, meta, SCHEDULE_KEY), json(file, meta, OPTIMIZER_KEY));
  }

  static void load(Trainer t, Path file) throws OrtException {
    Checkpoint c = read(file);
    Map<String, String> mySchedule = new TreeMap<>(t.schedule().describe());
    checkArgument(
        mySchedule.equals(new TreeMap<>(c.schedule())),
        "Checkpoint '%s' was written under the schedule %s, but this trainer runs %s. Build the"
            + " trainer with the same LrSchedule to resume.",
        file,
        c.schedule(),
        mySchedule);
    Map<String, String> myOptimizer = new TreeMap<>(optimizerOf(t));
    checkArgument(
        myOptimizer.equals(new TreeMap<>(c.optimizer())),
        "Checkpoint '%s' was written with optimizer settings %s, but this trainer has %s. Build"
            + " the TrainStepGraph with the same AdamW and clipping to resume.",
        file,
        c.optimizer(),
        myOptimizer);
    t.restore(c.tensors(), c.step());
  }

  private static Map<String, String> optimizerOf(Trainer t) {
    Map<String, String> m = new TreeMap<>(t.graphs().optimizer().describe());
    t.graphs().clipGradNorm().ifPresent(n -> m.put("clip_grad_norm", Double.toString(n)));
    return m;
  }

  private static Map<String, String> json(Path file, Map<String, String> meta, String key) {
    String s = meta.get(key);
    checkArgument(s != null, "Checkpoint '%s' lacks the metadata '%s'", file, key);
    Map<String, String> m = GSON.fromJson(s, new TypeToken<Map<String, String>>() {}.getType());
    return ImmutableMap.copyOf(m);
  }
}
