package dev.graft.trainer.taylor;

import static com.google.common.base.Preconditions.checkArgument;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMap;
import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.ir.Shape;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.infer.ShapeInference;
import dev.graft.ir.io.SessionFile;
import dev.graft.rewrite.discover.LinearModule;
import dev.graft.rewrite.discover.Module;
import dev.graft.rewrite.discover.ModuleDiscovery;
import dev.graft.rewrite.discover.ModuleKind;
import dev.graft.rewrite.peft.TaylorChannelPass;
import dev.graft.trainer.autodiff.Backprop;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

/**
 * First-order Taylor importance of the channels of hidden states (stage two of the two-stage
 * paradigm): for a hidden state h with channels on its last axis (a linear layer's output) or on
 * axis 1 (a Conv's NCHW output),
 *
 * <pre>
 *   s_c = | sum over the data (every batch, every position) of dL/dh_c * h_c |
 * </pre>
 *
 * (positions: tokens for a linear layer, the spatial grid for a Conv).
 *
 * the first-order estimate of how much the loss changes if channel c is removed (set to zero).
 * The gradients come from {@link Backprop} on a copy of the model; one ORT session computes, per
 * batch, the sum over positions of {@code dL/dh * h} for every chosen h, and the batches' sums
 * are added here before the absolute value is taken, so that contributions of opposite sign
 * cancel as the formula says. The top channels feed {@code TaylorChannelPass} as plain lists.
 */
public final class TaylorScores {
  /** The share of channels kept by default: the top eighth. */
  public static final double DEFAULT_FRACTION = 1.0 / 8;

  private static final String OUTPUT_PREFIX = "taylor_score/";

  private final ImmutableMap<String, double[]> scores;

  private TaylorScores(ImmutableMap<String, double[]> scores) {
    this.scores = scores;
  }

  /**
   * Scores the channels of the hidden values named in {@code hidden}.
   *
   * @param model the model, at opset {@value Backprop#MIN_OPSET} or newer, computing a scalar
   *     loss; it is not changed
   * @param loss the name of the scalar loss value
   * @param hidden the names of the hidden values h; channels are their last axis
   * @param batches the inputs of each batch, by input name; the caller owns (and closes) them
   */
  public static TaylorScores compute(
      Model model, String loss, List<String> hidden, Iterable<Map<String, OnnxTensor>> batches) {
    Model work = copy(model);
    Map<String, Value> values = new LinkedHashMap<>();
    for (String name : hidden) {
      Value v =
          work.graph()
              .lookup(name)
              .orElseThrow(() -> new IllegalArgumentException("The model has no value '" + name + "' to score."));
      values.put(name, v);
    }
    return run(work, loss, values, Map.of(), batches);
  }

  /**
   * Scores the output channels of linear modules (h = the module's output, after any bias) and of
   * ungrouped Convs (h = the Conv's NCHW output, channels on axis 1), by module name as {@code
   * graft inspect} lists them.
   */
  public static TaylorScores forModules(
      Model model, String loss, List<String> modules, Iterable<Map<String, OnnxTensor>> batches) {
    Model work = copy(model);
    List<Module> found = ModuleDiscovery.discover(work);
    Map<String, Value> values = new LinkedHashMap<>();
    Map<String, Integer> axes = new LinkedHashMap<>();
    for (String name : modules) {
      Optional<LinearModule> linear =
          found.stream()
              .filter(m -> TaylorChannelPass.tunable(m) && m.name().equals(name))
              .map(m -> (LinearModule) m)
              .findFirst();
      checkArgument(
          linear.isPresent(),
          "No %s module is named '%s'. Those modules are: %s.",
          TaylorChannelPass.KINDS,
          name,
          found.stream().filter(TaylorChannelPass::tunable).map(Module::name).collect(Collectors.joining(", ")));
      values.put(name, linear.get().output());
      if (linear.get().kind() == ModuleKind.CONV) axes.put(name, 1);
    }
    return run(work, loss, values, axes, batches);
  }

  private static Model copy(Model model) {
    WorkingModels.requireWorkingOpset(model, "Taylor scores (they need gradients)");
    // A deep copy sharing the tensors: the caller's model stays as it was.
    Model work = model.copy();
    ShapeInference.infer(work);
    return work;
  }

  /** {@code channelAxes}: the channel axis of a key, where it is not the last. */
  private static TaylorScores run(
      Model work,
      String lossName,
      Map<String, Value> hidden,
      Map<String, Integer> channelAxes,
      Iterable<Map<String, OnnxTensor>> batches) {
    Graph g = work.graph();
    Value loss =
        g.lookup(lossName).orElseThrow(() -> new IllegalArgumentException("The model has no loss value '" + lossName + "'."));
    checkArgument(
        loss.shape().map(TaylorScores::holdsOneElement).orElse(true),
        "The loss '%s' must be a scalar, got shape %s",
        lossName,
        loss.shape().orElse(null));
    Map<Value, Value> grads = Backprop.gradients(work, loss, hidden.values());

    GraphBuilder b = GraphBuilder.on(g).atEnd().prefix("/graft/taylor");
    Map<String, String> outputs = new LinkedHashMap<>();
    Map<String, Integer> widths = new LinkedHashMap<>();
    for (Map.Entry<String, Value> e : hidden.entrySet()) {
      Value h = e.getValue();
      Shape shape =
          h.shape()
              .orElseThrow(() -> new IllegalArgumentException("Cannot score '" + e.getKey() + "': its shape is unknown after shape inference."));
      checkArgument(shape.rank() >= 1, "Cannot score '%s': it is a scalar; it has no channel axis", e.getKey());
      int axis = channelAxes.getOrDefault(e.getKey(), shape.rank() - 1);
      checkArgument(
          axis < shape.rank() && shape.dim(axis).isFixed(),
          "Cannot score '%s': its channel axis (%s) has no fixed size in %s",
          e.getKey(),
          axis,
          shape);
      int width = Math.toIntExact(shape.dim(axis).value());
      Value product = b.op("Mul", grads.get(h), h);
      Value perChannel = product;
      if (shape.rank() > 1) {
        long[] axes = IntStream.range(0, shape.rank()).filter(i -> i != axis).mapToLong(i -> i).toArray();
        perChannel = b.op("ReduceSum", List.of(product, b.int64s(axes)), Attr.of("keepdims", 0L));
      }
      String name = g.freshName(OUTPUT_PREFIX + e.getKey());
      Value out = b.output(name, perChannel);
      out.setType(Type.tensor(h.dataType().orElse(DataType.FLOAT), Shape.of(width)));
      outputs.put(e.getKey(), out.name());
      widths.put(e.getKey(), width);
    }

    Map<String, double[]> sums = new LinkedHashMap<>();
    widths.forEach((k, w) -> sums.put(k, new double[w]));
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    int count = 0;
    try (OrtSession session = open(env, work)) {
      for (Map<String, OnnxTensor> feeds : batches) {
        try (OrtSession.Result r = session.run(feeds, Set.copyOf(outputs.values()))) {
          for (Map.Entry<String, String> e : outputs.entrySet()) {
            double[] acc = sums.get(e.getKey());
            OnnxValue v = r.get(e.getValue()).orElseThrow();
            Object data = v.getValue();
            if (data instanceof float[] f) {
              for (int c = 0; c < acc.length; c++) acc[c] += f[c];
            } else if (data instanceof double[] d) {
              for (int c = 0; c < acc.length; c++) acc[c] += d[c];
            } else {
              throw new IllegalStateException("Taylor score of '" + e.getKey() + "' came back as " + data.getClass().getSimpleName());
            }
          }
        }
        count++;
      }
    } catch (OrtException e) {
      throw new IllegalStateException("ONNX Runtime failed while scoring channels: " + e.getMessage(), e);
    }
    checkArgument(count > 0, "Taylor scores need at least one batch of data");
    ImmutableMap.Builder<String, double[]> out = ImmutableMap.builder();
    sums.forEach((k, acc) -> out.put(k, Arrays.stream(acc).map(Math::abs).toArray()));
    return new TaylorScores(out.buildOrThrow());
  }

  /** Opens {@code work} from a file, so its frozen external weights never pass through the heap. */
  private static OrtSession open(OrtEnvironment env, Model work) throws OrtException {
    try (SessionFile file = SessionFile.write(work)) {
      return env.createSession(file.path().toString(), new OrtSession.SessionOptions());
    }
  }

  private static boolean holdsOneElement(Shape s) {
    return s.isStatic() && Arrays.stream(s.staticSizes()).reduce(1, (a, b) -> a * b) == 1;
  }

  /** The scored values (or modules), in the order asked for. */
  public ImmutableList<String> keys() {
    return scores.keySet().asList();
  }

  /** s_c for every channel of {@code key}; a copy. */
  public double[] scores(String key) {
    double[] s = scores.get(key);
    checkArgument(s != null, "No scores for '%s'; scored: %s", key, scores.keySet());
    return s.clone();
  }

  /**
   * The ceil(fraction · channels) channels of {@code key} with the highest scores, highest first
   * (ties: the lower index first).
   */
  public ImmutableList<Integer> top(String key, double fraction) {
    checkArgument(fraction > 0 && fraction <= 1, "The fraction of channels to keep must be in (0, 1], got %s", fraction);
    double[] s = scores(key);
    int k = Math.max(1, (int) Math.ceil(fraction * s.length - 1e-9));
    List<Integer> order = new ArrayList<>(IntStream.range(0, s.length).boxed().toList());
    order.sort(Comparator.<Integer>comparingDouble(c -> -s[c]).thenComparingInt(c -> c));
    return ImmutableList.copyOf(order.subList(0, k));
  }

  /** The top channels of every scored key: the channel lists {@code TaylorChannelPass} takes. */
  public ImmutableMap<String, ImmutableList<Integer>> top(double fraction) {
    ImmutableMap.Builder<String, ImmutableList<Integer>> out = ImmutableMap.builder();
    for (String key : scores.keySet()) out.put(key, top(key, fraction));
    return out.buildOrThrow();
  }

  /** The top eighth of every scored key. */
  public ImmutableMap<String, ImmutableList<Integer>> top() {
    return top(DEFAULT_FRACTION);
  }
}
