package dev.graft.trainer.train;

import static com.google.common.base.Preconditions.checkArgument;
import static com.google.common.base.Preconditions.checkState;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.DataType;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.convert.LayerNormFusion;
import dev.graft.ir.infer.ShapeInference;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.trainer.autodiff.Backprop;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.Set;

/**
 * Turns a forward model into the graphs that train it on a stock ONNX Runtime (DESIGN.md decisions
 * 1 to 3). Each method returns a new model; the forward model given to the builder is copied and
 * never changed.
 *
 * <pre>
 *   trainStep():  batch inputs, labels, params, graft.adamw.{m,v}.*, graft.step, graft.lr
 *                 -> graft.loss, logits, graft.grad_norm, graft.updated.{param, m, v}
 *   eval():       batch inputs, labels, params           -> graft.loss, logits
 *   accumulate(): batch inputs, labels, params, graft.grad_sum.*
 *                 -> graft.loss, logits, graft.updated.graft.grad_sum.*   (sum += this batch's gradient)
 *   apply():      params, m, v, graft.grad_sum.*, graft.grad_scale, graft.step, graft.lr
 *                 -> graft.grad_norm, graft.updated.{param, m, v}        (AdamW on grad_sum * grad_scale)
 * </pre>
 *
 * Trainable parameters move from initializer to graph input under their own name, so the forward
 * nodes are untouched; frozen weights stay initializers, which ORT pre-packs (and keeps on the
 * device). Only the trainables get gradients ({@link Backprop}).
 *
 * <p>Gradient accumulation over k micro-batches runs {@code accumulate()} k times, feeding each
 * run's sums to the next (starting from zeros), then {@code apply()} with {@code grad_scale = 1/k}.
 * With a mean loss and micro-batches of equal size (and no ignored labels), the averaged gradient
 * is the gradient of the whole batch, so the update is the one-big-batch update. The fused
 * {@code trainStep()} is the k = 1 case in one session run.
 */
public final class TrainStepGraph {
  /** A trainable parameter: its initializer's name and dims, and whether AdamW decays it. */
  public record Param(String name, long[] dims, boolean decay) {
    public long numElements() {
      long n = 1;
      for (long d : dims) n *= d;
      return n;
    }
  }

  private final Model forward;
  private final long opset;
  private final String logits;
  private final String labels;
  private final Loss loss;
  private final AdamW optimizer;
  private final OptionalDouble clipGradNorm;
  private final ImmutableList<Param> params;
  private final ImmutableList<String> batchInputs;
  private final Optional<String> unpadMask;
  private Unpadding.Result unpadding;

  private TrainStepGraph(Builder b, Model forward) {
    this.forward = forward.copy();
    this.opset = forward.defaultOpset().orElse(Backprop.MIN_OPSET);
    this.logits = b.logits;
    this.labels = b.labels;
    this.loss = b.loss;
    this.optimizer = b.optimizer;
    this.clipGradNorm = b.clipGradNorm;
    this.unpadMask = b.unpadMask;
    Graph g = forward.graph();
    ImmutableList.Builder<Param> ps = ImmutableList.builder();
    for (String name : b.trainables) {
      Value v = g.initializer(name).orElseThrow();
      long[] dims = v.initializer().get().dims();
      ps.add(new Param(name, dims, optimizer.decays(dims)));
    }
    this.params = ps.build();
    ImmutableList.Builder<String> ins = ImmutableList.builder();
    for (Value in : g.inputs()) if (!in.isInitializer()) ins.add(in.name());
    this.batchInputs = ins.build();
  }

  public static Builder builder(Model forward) {
    return new Builder(forward);
  }

  /** Says what the graphs are made from; {@link #build()} checks it all against the model. */
  public static final class Builder {
    private final Model forward;
    private String logits = "logits";
    private String labels = "labels";
    private Loss loss = Loss.crossEntropy();
    private AdamW optimizer = AdamW.defaults();
    private OptionalDouble clipGradNorm = OptionalDouble.empty();
    private List<String> trainables;
    private Optional<String> unpadMask = Optional.empty();

    private Builder(Model forward) {
      checkArgument(forward != null, "TrainStepGraph needs a forward model, got null");
      this.forward = forward;
    }

    /** The graph output the loss reads (default "logits"). */
    public Builder logits(String outputName) {
      this.logits = outputName;
      return this;
    }

    /** The name of the labels input the train and eval graphs get (default "labels"). */
    public Builder labels(String inputName) {
      this.labels = inputName;
      return this;
    }

    public Builder loss(Loss l) {
      this.loss = l;
      return this;
    }

    public Builder optimizer(AdamW hp) {
      this.optimizer = hp;
      return this;
    }

    /** Scales the gradients so their global L2 norm is at most {@code maxNorm}; 0 turns it off. */
    public Builder clipGradNorm(double maxNorm) {
      checkArgument(maxNorm >= 0, "the clipping norm must not be negative, got %s", maxNorm);
      this.clipGradNorm = maxNorm > 0 ? OptionalDouble.of(maxNorm) : OptionalDouble.empty();
      return this;
    }

    /**
     * The initializers to train. When never called, those the model's metadata marks trainable
     * ({@link Trainables#fromMetadata}).
     */
    public Builder trainables(Collection<String> initializerNames) {
      this.trainables = List.copyOf(new LinkedHashSet<>(initializerNames));
      return this;
    }

    /**
     * Trains padding-free ({@link Unpadding}): the token-wise layers run on the tokens where the
     * mask input {@code maskInput} is non-zero. {@link Trainer} checks on the first padded batch
     * that this leaves loss and logits as they were, and trains padded when it does not.
     */
    public Builder unpad(String maskInput) {
      checkArgument(maskInput != null && !maskInput.isEmpty(), "unpad needs the mask input's name");
      this.unpadMask = Optional.of(maskInput);
      return this;
    }

    /** Unpads when the model has an {@value Unpadding#DEFAULT_MASK} input ({@link #unpad}); else not. */
    public Builder unpadWhereMasked() {
      this.unpadMask = Unpadding.maskInput(forward);
      return this;
    }

    /**
     * Checks the model and makes the graphs' source. Also moves the model's frozen float weights
     * into direct buffers, in place ({@link TrainStepGraph#moveFrozenWeightsOffHeap}): the same
     * values, held once for the model and the trainer's sessions.
     */
    public TrainStepGraph build() {
      WorkingModels.requireWorkingOpset(forward, "The train-step graph (the gradient rules' dialect)");
      Graph g = forward.graph();
      checkArgument(
          g.outputs().stream().anyMatch(o -> o.name().equals(logits)),
          "The forward model has no output '%s' to compute the loss from; its outputs are %s."
              + " Name the logits output with logits(...).",
          logits,
          g.outputs().stream().map(Value::name).toList());
      checkArgument(
          g.lookup(labels).isEmpty(),
          "The labels input '%s' would clash with a value of the forward model; choose another"
              + " name with labels(...).",
          labels);
      checkArgument(loss != null && optimizer != null, "loss and optimizer must not be null");
      if (trainables == null) trainables = Trainables.fromMetadata(forward);
      checkArgument(
          !trainables.isEmpty(),
          "No trainable parameters: the model's metadata '%s' lists none. Mark them with a PEFT"
              + " pass, or name them with trainables(...) (Trainables.matching(model, pattern)).",
          Trainables.METADATA_KEY);
      for (String t : trainables) {
        Value v =
            g.initializer(t)
                .orElseThrow(
                    () ->
                        new IllegalArgumentException(
                            "Trainable '" + t + "' is not an initializer of the forward model."
                                + " Only initializers can be trained; check the name."));
        checkArgument(
            v.initializer().get().dataType() == DataType.FLOAT,
            "Trainable '%s' is %s; the trainer updates FLOAT parameters only. Freeze it or cast"
                + " the model to float32.",
            t,
            v.initializer().get().dataType());
        checkArgument(!v.isGraphOutput(), "Trainable '%s' is itself a graph output; train a copy of it", t);
      }
      for (Value v : g.values()) {
        checkArgument(
            !v.name().startsWith(StateNames.PREFIX),
            "The forward model has a value '%s' under the prefix '%s', which the train-step graph"
                + " reserves for its own inputs and outputs. Rename it.",
            v.name(),
            StateNames.PREFIX);
      }
      if (unpadMask.isPresent()) {
        String mask = unpadMask.get();
        Value in = g.lookup(mask).orElse(null);
        checkArgument(
            in != null && g.inputs().contains(in) && !in.isInitializer(),
            "Cannot unpad on '%s': it is not an input of the forward model; its inputs are %s.",
            mask,
            g.inputs().stream().filter(v -> !v.isInitializer()).map(Value::name).toList());
      }
      moveFrozenWeightsOffHeap(g, Set.copyOf(trainables));
      return new TrainStepGraph(this, forward);
    }
  }

  /**
   * Replaces, in {@code g} itself, each weight the trainer's sessions share ({@link
   * SharedWeights#shares}) that is held in the Java heap by the same tensor in a direct buffer
   * ({@link DenseTensor#offHeap}): the sessions then read that buffer in place, and the heap copy,
   * which every copy of the model shared, becomes garbage. The caller's model holds the same values
   * as before; only raw-data tensors move, so a save writes every tensor in the form
   * it had. Here and not at load: a parsed message holds a heap copy of its own, so loading into
   * direct buffers would make every command, not only training, peak at twice the weights.
   */
  private static void moveFrozenWeightsOffHeap(Graph g, Set<String> trainables) {
    for (Value v : g.initializers()) {
      if (!SharedWeights.shares(v, trainables)) continue;
      DenseTensor t = (DenseTensor) v.initializer().orElseThrow();
      if (t.storage() instanceof DenseTensor.Storage.Raw r && !r.bytes().isDirect()) {
        g.setInitializer(v, t.offHeap());
      }
    }
  }

  private TrainStepGraph(TrainStepGraph o, Optional<String> unpadMask) {
    this.forward = o.forward;
    this.opset = o.opset;
    this.logits = o.logits;
    this.labels = o.labels;
    this.loss = o.loss;
    this.optimizer = o.optimizer;
    this.clipGradNorm = o.clipGradNorm;
    this.params = o.params;
    this.batchInputs = o.batchInputs;
    this.unpadMask = unpadMask;
  }

  /** The same graphs, trained on padded batches as they come. */
  public TrainStepGraph padded() {
    return unpadMask.isEmpty() ? this : new TrainStepGraph(this, Optional.empty());
  }

  /** The mask input of padding-free training ({@link Builder#unpad}), when on. */
  public Optional<String> unpadMask() {
    return unpadMask;
  }

  /**
   * What padding-free training moves in these graphs (computed on first use); empty when it is
   * off.
   */
  public Optional<Unpadding.Result> unpadding() {
    if (unpadMask.isEmpty()) return Optional.empty();
    if (unpadding == null) prepare("graft_eval");
    return Optional.of(unpadding);
  }

  // ---- the graphs --------------------------------------------------------------------------------

  /** The fused step: forward, loss, backward, clipping and AdamW in one graph. */
  public Model trainStep() {
    Prepared p = prepare("graft_train_step");
    Map<Value, Value> grads = Backprop.gradients(p.model, p.loss, p.params);
    Unpadding.lower(p.model);
    FrozenWeightTransposes.fuse(p.model);
    GraphBuilder b = GraphBuilder.on(p.model.graph());
    List<AdamWUpdate.Slot> slots = new ArrayList<>();
    for (int i = 0; i < params.size(); i++) {
      Value pv = p.params.get(i);
      slots.add(new AdamWUpdate.Slot(pv, grads.get(pv), params.get(i).decay()));
    }
    addOptimizer(b, slots);
    // Last, as it replaces nodes (and so values the gradient map holds); off by default.
    if (TransposedMatMulFusion.enabled()) TransposedMatMulFusion.fuse(p.model);
    return p.model;
  }

  /** Forward and loss with the parameters as inputs: no backward. */
  public Model eval() {
    Model m = prepare("graft_eval").model;
    Unpadding.lower(m);
    return m;
  }

  /** Forward, loss and backward, adding this batch's gradients to the running sums. */
  public Model accumulate() {
    Prepared p = prepare("graft_accumulate");
    Map<Value, Value> grads = Backprop.gradients(p.model, p.loss, p.params);
    Unpadding.lower(p.model);
    FrozenWeightTransposes.fuse(p.model);
    Graph g = p.model.graph();
    GraphBuilder b = GraphBuilder.on(g).prefix("/graft/accumulate");
    List<Value> sums = new ArrayList<>();
    for (Value pv : p.params) {
      Value acc = g.addInput(StateNames.gradSum(pv.name()), pv.type().orElse(null));
      sums.add(b.op("Add", acc, grads.get(pv)));
    }
    for (int i = 0; i < sums.size(); i++) {
      b.output(StateNames.updated(StateNames.gradSum(p.params.get(i).name())), sums.get(i));
    }
    if (TransposedMatMulFusion.enabled()) TransposedMatMulFusion.fuse(p.model);
    return p.model;
  }

  /** Clipping and AdamW on {@code grad_sum * grad_scale}; holds no forward weights. */
  public Model apply() {
    Model forward = forwardCopy();
    GraphBuilder b = GraphBuilder.create("graft_apply");
    Graph g = b.graph();
    b.prefix("/graft/apply");
    Value scale = g.addInput(StateNames.GRAD_SCALE, Type.tensor(DataType.FLOAT));
    List<AdamWUpdate.Slot> slots = new ArrayList<>();
    for (Param param : params) {
      Type t = Type.tensor(DataType.FLOAT, param.dims());
      Value pv = g.addInput(param.name(), t);
      Value sum = g.addInput(StateNames.gradSum(param.name()), t);
      slots.add(new AdamWUpdate.Slot(pv, b.op("Mul", sum, scale), param.decay()));
    }
    addOptimizer(b, slots);
    Model m = b.model(opset);
    m.setIrVersion(forward.irVersion());
    return m;
  }

  private void addOptimizer(GraphBuilder b, List<AdamWUpdate.Slot> slots) {
    Graph g = b.graph();
    Value step = g.addInput(StateNames.STEP, Type.tensor(DataType.INT64));
    Value lr = g.addInput(StateNames.LEARNING_RATE, Type.tensor(DataType.FLOAT));
    AdamWUpdate.Result r = AdamWUpdate.append(b, optimizer, slots, step, lr, clipGradNorm);
    b.output(StateNames.GRAD_NORM, r.gradNorm());
    for (int i = 0; i < slots.size(); i++) {
      b.output(StateNames.updated(slots.get(i).param().name()), r.params().get(i));
    }
    for (int i = 0; i < slots.size(); i++) {
      b.output(StateNames.updated(StateNames.m(slots.get(i).param().name())), r.m().get(i));
    }
    for (int i = 0; i < slots.size(); i++) {
      b.output(StateNames.updated(StateNames.v(slots.get(i).param().name())), r.v().get(i));
    }
  }

  /** A forward copy with trainables as inputs, the labels input, and outputs loss then logits. */
  private record Prepared(Model model, Value loss, List<Value> params) {}

  private Prepared prepare(String graphName) {
    Model m = forwardCopy();
    // Exporters decompose LayerNorm into ReduceMean/Sub/Pow/Sqrt/Div/Mul/Add; the training copy
    // runs one LayerNormalization instead, forward and backward (whose rule then reads the saved
    // mean and inverse deviation). The forward model, and so the exported one, keeps its form.
    LayerNormFusion.fuse(m);
    Graph g = m.graph();
    g.setName(graphName);
    Value logitsValue = g.outputs().stream().filter(o -> o.name().equals(logits)).findFirst().orElseThrow();
    for (Value o : List.copyOf(g.outputs())) g.removeOutput(o);

    List<Value> paramInputs = new ArrayList<>();
    for (Param param : params) paramInputs.add(toInput(g, param.name()));

    ShapeInference.infer(m);
    // The exporters' five-op Erf GELU runs as one com.microsoft Gelu in the training copy, with a
    // gradient rule that recomputes from its input (GeluFusion needs the types inference gives).
    GeluFusion.fuse(m);
    // Residual Add (and bias Add) + LayerNormalization run as one com.microsoft
    // SkipLayerNormalization, whose CPU kernel is several times faster than LayerNormalization's.
    SkipLayerNormFusion.fuse(m);
    if (unpadMask.isPresent()) {
      ShapeInference.infer(m);
      // The logits stay a graph output through the rewrite, so that when their producer moves,
      // the Pad that takes their place takes their name too.
      g.addOutput(logitsValue);
      unpadding = Unpadding.apply(m, unpadMask.get());
      logitsValue = g.lookup(logits).orElseThrow();
      g.removeOutput(logitsValue);
    }
    Value labelsValue = g.addInput(labels, loss.labelType(logitsValue));
    GraphBuilder b = GraphBuilder.on(g).prefix("/graft/loss");
    Value lossValue = b.output(StateNames.LOSS, loss.append(b, logitsValue, labelsValue));
    g.addOutput(logitsValue);
    // Backprop undoes broadcasting from the static shapes inference gives the loss nodes.
    ShapeInference.infer(m);
    checkState(
        lossValue.shape().map(s -> s.rank() == 0).orElse(true),
        "The loss must be a scalar, but '%s' has shape %s",
        lossValue.name(),
        lossValue.shape().orElse(null));
    return new Prepared(m, lossValue, paramInputs);
  }

  /** Moves initializer {@code name} to a graph input of the same name and type. */
  private static Value toInput(Graph g, String name) {
    Value init = g.initializer(name).orElseThrow();
    Value in = g.addInput(g.freshName(name + ".graft_input"), init.type().orElse(null));
    init.replaceAllUsesWith(in);
    boolean alsoInput = g.inputs().contains(init);
    g.removeInitializer(init);
    if (alsoInput) g.removeInput(init);
    g.rename(in, name);
    return in;
  }

  private Model forwardCopy() {
    return forward.copy();
  }

  // ---- what the graphs are made of ----------------------------------------------------------

  /** A fresh copy of the forward model. */
  public Model forward() {
    return forwardCopy();
  }

  public ImmutableList<Param> params() {
    return params;
  }

  /** The forward model's non-initializer inputs, which every batch must feed. */
  public ImmutableList<String> batchInputs() {
    return batchInputs;
  }

  public String labels() {
    return labels;
  }

  public String logits() {
    return logits;
  }

  public Loss loss() {
    return loss;
  }

  public AdamW optimizer() {
    return optimizer;
  }

  public OptionalDouble clipGradNorm() {
    return clipGradNorm;
  }

  public long opset() {
    return opset;
  }
}
