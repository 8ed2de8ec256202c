package dev.graft.trainer.run;

import static com.google.common.base.Preconditions.checkArgument;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMap;
import dev.graft.ir.DataType;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.infer.ShapeInference;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.PassManager;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.recipe.TaylorSelection;
import dev.graft.trainer.task.Objective;
import dev.graft.trainer.task.Task;
import dev.graft.trainer.task.TaskBatch;
import dev.graft.trainer.taylor.TaylorScores;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Taylor channel selection as a trainer-side stage: scores the selected modules' output channels
 * by the task's own loss on the model as it is now (the earlier stages' trained values in place),
 * keeps the top fraction of each and hands the channel pass the plain channel lists (rewriters
 * never import the trainer).
 *
 * <pre>
 *   objective = task.objective(model) + loss            on a copy; the model is not changed
 *   s_c = |sum over the first batches of dL/dh_c * h_c| per output channel c of each module
 *   model = TaylorChannelPass(top fraction of each module)(model)
 * </pre>
 */
final class TaylorStage {
  private TaylorStage() {}

  static void select(Model model, TaylorSelection select, Task task, long seed, RunListener listener)
      throws OrtException {
    ImmutableList<String> modules = select.modules(model);
    Objective objective = task.objective(model.copy());
    Model scored = objective.model();
    ShapeInference.infer(scored);
    Graph g = scored.graph();
    Value output =
        g.outputs().stream()
            .filter(o -> o.name().equals(objective.output()))
            .findFirst()
            .orElseThrow(
                () ->
                    new IllegalArgumentException(
                        "taylor-channels: scoring channels needs the " + task.name() + " loss, which reads the"
                            + " output '" + objective.output() + "', and the model has none (its outputs are "
                            + g.outputs().stream().map(Value::name).toList() + ")."));
    checkArgument(
        g.lookup(objective.labels()).isEmpty(),
        "The model already has a value '%s'; the loss needs that name for its labels", objective.labels());
    Value labels = g.addInput(objective.labels(), objective.loss().labelType(output));
    Value loss =
        objective.loss().append(GraphBuilder.on(g).atEnd().prefix("/graft/taylor_loss"), output, labels);

    List<TaskBatch> shuffled = task.trainBatches(seed);
    List<TaskBatch> batches = shuffled.subList(0, Math.min(select.batches(), shuffled.size()));
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    List<Map<String, OnnxTensor>> feeds = new ArrayList<>();
    TaylorScores scores;
    try {
      for (TaskBatch b : batches) {
        Map<String, OnnxTensor> f = new LinkedHashMap<>();
        feeds.add(f);
        for (Map.Entry<String, Tensor> e : b.feeds().entrySet()) f.put(e.getKey(), ort(env, e.getValue()));
      }
      scores = TaylorScores.forModules(scored, loss.name(), modules, feeds);
    } finally {
      feeds.forEach(f -> f.values().forEach(OnnxTensor::close));
    }
    ImmutableMap<String, ImmutableList<Integer>> top = scores.top(select.fraction());
    StringBuilder kept = new StringBuilder();
    for (String m : top.keySet()) {
      kept.append(kept.length() == 0 ? "" : ", ")
          .append(m).append(' ').append(top.get(m).size()).append('/').append(scores.scores(m).length);
    }
    listener.message(
        String.format(
            "taylor-channels: scored %d modules on %d batches (%d examples); kept the top %s of each: %s",
            modules.size(), batches.size(), batches.stream().mapToInt(TaskBatch::size).sum(),
            fraction(select.fraction()), kept));
    for (PassResult r : new PassManager(List.of(select.pass(top))).run(model)) {
      listener.message(r.summary());
    }
  }

  private static OnnxTensor ort(OrtEnvironment env, Tensor t) throws OrtException {
    if (t.dataType() == DataType.INT64) return OnnxTensor.createTensor(env, LongBuffer.wrap(t.toLongArray()), t.dims());
    if (t.dataType() == DataType.FLOAT) return OnnxTensor.createTensor(env, FloatBuffer.wrap(t.toFloatArray()), t.dims());
    throw new IllegalArgumentException(
        "Taylor scoring feeds int64 and float batches; '" + t.name() + "' is " + t.dataType());
  }

  /** 0.125 as 1/8; other shares as they are. */
  static String fraction(double f) {
    double inverse = 1 / f;
    return Math.abs(inverse - Math.rint(inverse)) < 1e-9 ? "1/" + (long) Math.rint(inverse) : Double.toString(f);
  }
}
