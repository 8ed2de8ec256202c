package dev.graft.trainer.train;

import static com.google.common.base.Preconditions.checkArgument;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtLoggingLevel;
import ai.onnxruntime.OrtSession;
import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMap;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.io.SessionFile;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Consumer;

/**
 * Trains the trainable parameters of a model on ONNX Runtime, in the spirit of ORT's training API
 * ({@code TrainingSession.trainStep/evalStep}), with the graphs of {@link TrainStepGraph}:
 *
 * <pre>{@code
 * TrainStepGraph graphs = TrainStepGraph.builder(model).trainables(names).build();
 * try (Trainer t = Trainer.builder(graphs).schedule(LrSchedule.constant(1e-3)).build()) {
 *   StepResult r = t.trainStep(Map.of("x", x, "labels", y));   // one fused session run
 *   Model tuned = t.exportTrainedModel();
 * }
 * }</pre>
 *
 * <p>The trainable parameters and their AdamW moments live between steps as the ORT tensors the
 * last run returned, fed straight back into the next run; frozen weights never leave the
 * session. Batches are maps from input name (every batch input of the model, and the labels) to
 * IR tensors. On the CPU with one intra-op thread a run is bit-for-bit repeatable, so training is
 * deterministic given the model, the batches and their order.
 *
 * <p>Padding-free training ({@link TrainStepGraph.Builder#unpad}, {@link Unpadding}): batches
 * feed the attention mask also as {@link Unpadding#TOKEN_MASK} (and, where the graphs pack
 * attention rows, where its tokens go as {@link Unpadding#PACKING}). Before the first padded batch's
 * step, the trainer checks that the padding-free step computes what the padded one does (on three
 * of its rows, with the mask and with ones as the token mask) and otherwise reopens its sessions
 * on the padded graphs; what it decided goes to {@link Builder#notes}.
 *
 * <p>Not thread-safe: one trainer, one training loop.
 */
public final class Trainer implements AutoCloseable {
  /** The message for a missing CUDA provider: which jar and which native libraries. */
  static final String CUDA_HELP =
      "CUDA needs the onnxruntime_gpu jar (build with -Pcuda) and CUDA 12 + cuDNN 9 libraries on"
          + " LD_LIBRARY_PATH";

  /** Frozen weights from which building a trainer leaves enough garbage to collect at once. */
  static final long RELEASE_HEAP_ABOVE = 32L << 20;

  private TrainStepGraph graphs;
  private final LrSchedule schedule;
  private final Device device;
  private final OrtEnvironment env;
  private final OrtSession.SessionOptions options;
  /** The train-step session's options: {@link #options} with pre-packing on (or the same object). */
  private final OrtSession.SessionOptions trainOptions;
  private final Set<OrtSession.SessionOptions> largeWeightOptionsSet = new HashSet<>();
  private final SharedWeights sharedWeights;
  private OrtSession trainSession;
  private final Consumer<String> notes;
  /** False until padding-free training has been checked on a padded batch (true when it is off). */
  private boolean unpaddingChecked;
  private OrtSession evalSession;
  private OrtSession accumulateSession;
  private OrtSession applySession;

  /** Parameter, m and v tensors by input name; owned by {@link #stateOwner}. */
  private Map<String, OnnxTensor> state = new HashMap<>();
  private AutoCloseable stateOwner;
  private long step;

  private Trainer(Builder b) throws OrtException {
    // -Dgraft.train.unpad=0 trains padded whatever the graphs say (for measuring; Unpadding).
    this.graphs = Unpadding.enabled() ? b.graphs : b.graphs.padded();
    this.schedule = b.schedule;
    this.device = b.device;
    this.notes = b.notes;
    this.unpaddingChecked = this.graphs.unpadMask().isEmpty();
    this.env = OrtEnvironment.getEnvironment();
    this.options = TrainSessionOptions.create(b.device, b.intraOpThreads);
    OrtSession train = null;
    SharedWeights shared = SharedWeights.none();
    OrtSession.SessionOptions forTrain = options;
    try {
      // The train, eval and accumulate sessions read one copy of the frozen weights (unpacked);
      // the train-step session also packs them for its forward MatMuls (TrainSessionOptions).
      if (!TrainSessionOptions.prepacking() && b.device.kind() == Device.Kind.CPU) {
        Set<String> trainables = new HashSet<>();
        for (TrainStepGraph.Param p : graphs.params()) trainables.add(p.name());
        shared = SharedWeights.addTo(options, env, graphs.forward().graph(), trainables);
        if (TrainSessionOptions.trainPrepacking()) {
          forTrain = TrainSessionOptions.create(b.device, b.intraOpThreads, true);
          shared.addTo(forTrain);
        }
      }
      this.sharedWeights = shared;
      this.trainOptions = forTrain;
      try {
        train = session(graphs.trainStep(), trainOptions);
      } catch (OrtException | RuntimeException e) {
        if (graphs.unpadMask().isEmpty()) throw e;
        // A graph the rewrite made and ORT (or a pass) refused: train padded, and say so.
        notes.accept("padding-free training is off for this model: its train step could not be built ("
            + e.getMessage() + "). Training on padded batches as they come; please report this.");
        graphs = graphs.padded();
        unpaddingChecked = true;
        train = session(graphs.trainStep(), trainOptions);
      }
      Unpadding.Result unpad = graphs.unpadding().orElse(null);
      if (unpad != null && !unpad.applied()) {
        // Nothing moved (no linear layer on rows of the mask's shape): the graphs are the padded ones.
        notes.accept("padding-free training does not apply to this model: " + unpad.skipped().orElse("nothing moved"));
        graphs = graphs.padded();
        unpaddingChecked = true;
      }
      this.trainSession = train;
      initState();
      if (shared.bytes() >= RELEASE_HEAP_ABOVE) releaseBuildGarbage();
    } catch (OrtException | RuntimeException e) {
      if (train != null) train.close();
      options.close();
      if (forTrain != options) forTrain.close();
      shared.close();
      throw e;
    }
  }

  /**
   * Building the train-step graph and writing it for ORT leaves garbage in the Java heap (copies of
   * the IR, the session file's bytes, the frozen weights' heap copy that {@link TrainStepGraph}
   * replaced by direct buffers), and the heap keeps those pages committed until a collection
   * shrinks it. They would sit under the activations ORT allocates on the first step and add to
   * the process's peak, so the trainer collects once here, between building and training, and the
   * JVM hands freed pages back (G1 shrinks the heap after a full collection): on bge-small (33M
   * parameters) 41 MB stay committed, 9 MB of them live (docs/performance.md, "Session 9" and
   * "Session 10"). Only for models of {@link #RELEASE_HEAP_ABOVE} or more of frozen weights;
   * {@code -Dgraft.train.releaseHeap=0} skips it.
   */
  private static void releaseBuildGarbage() {
    if ("0".equals(System.getProperty("graft.train.releaseHeap", "1"))) return;
    System.gc();
  }

  public static Builder builder(TrainStepGraph graphs) {
    return new Builder(graphs);
  }

  /** Session settings; {@link #build()} opens the train-step session. */
  public static final class Builder {
    private final TrainStepGraph graphs;
    private LrSchedule schedule = LrSchedule.constant(1e-3);
    private Device device = Device.cpu();
    private int intraOpThreads;
    private Consumer<String> notes = note -> {};

    private Builder(TrainStepGraph graphs) {
      checkArgument(graphs != null, "Trainer needs a TrainStepGraph, got null");
      this.graphs = graphs;
    }

    public Builder schedule(LrSchedule s) {
      checkArgument(s != null, "schedule must not be null");
      this.schedule = s;
      return this;
    }

    public Builder device(Device d) {
      checkArgument(d != null, "device must not be null");
      this.device = d;
      return this;
    }

    /** ORT's intra-op threads; 0 (the default) lets ORT choose. Use 1 for bit-exact repeats. */
    public Builder intraOpThreads(int n) {
      checkArgument(n >= 0, "intra-op threads must not be negative, got %s", n);
      this.intraOpThreads = n;
      return this;
    }

    /** Where the trainer says what it decided on its own (padding-free training checked or given up). */
    public Builder notes(Consumer<String> sink) {
      checkArgument(sink != null, "notes sink must not be null");
      this.notes = sink;
      return this;
    }

    /** Opens the sessions; ORT failures (a graph it rejects, a missing provider) are thrown as is. */
    public Trainer build() throws OrtException {
      return new Trainer(this);
    }
  }

  /** Opens {@code m} from a file: frozen external weights go from their file to ORT, not the heap. */
  private OrtSession session(Model m) throws OrtException {
    return session(m, options);
  }

  private OrtSession session(Model m, OrtSession.SessionOptions o) throws OrtException {
    try (SessionFile file = SessionFile.write(m)) {
      // Once per options object: ORT warns when an options entry is set again.
      if (file.large() && largeWeightOptionsSet.add(o)) {
        largeWeightOptions(o);
        // The train options pack weights whatever -Dgraft.ort.prepack says: not past the limit.
        if (o != options && !TrainSessionOptions.prepacking()) o.addConfigEntry("session.disable_prepacking", "1");
      }
      return env.createSession(file.path().toString(), o);
    }
  }

  /**
   * Over {@link SessionFile#LARGE_WEIGHTS} of frozen weights, ORT must not copy them: no MatMul
   * prepacking (a packed copy of every weight) and no constant folding (which would store the
   * {@code Transpose(W)} of each linear's backward pass as a second copy). The weights stay in
   * the mapped model file; the transposes are computed per step.
   */
  public static void largeWeightOptions(OrtSession.SessionOptions o) throws OrtException {
    // TrainSessionOptions turns pre-packing off already unless -Dgraft.ort.prepack=1 asked for it.
    if (TrainSessionOptions.prepacking()) o.addConfigEntry("session.disable_prepacking", "1");
    o.addConfigEntry("optimization.disable_specified_optimizers", "ConstantFolding");
  }

  private void initState() throws OrtException {
    Graph g = graphs.forward().graph();
    List<OnnxTensor> owned = new ArrayList<>();
    try {
      for (TrainStepGraph.Param p : graphs.params()) {
        Tensor init = g.initializer(p.name()).flatMap(Value::initializer).orElseThrow();
        put(owned, p.name(), OrtTensors.toOrt(env, init));
        put(owned, StateNames.m(p.name()), OrtTensors.zeros(env, p.dims()));
        put(owned, StateNames.v(p.name()), OrtTensors.zeros(env, p.dims()));
      }
    } catch (OrtException | RuntimeException e) {
      owned.forEach(OnnxTensor::close);
      throw e;
    }
    replaceState(state, () -> owned.forEach(OnnxTensor::close));
  }

  private void put(List<OnnxTensor> owned, String name, OnnxTensor t) {
    owned.add(t);
    state.put(name, t);
  }

  private void replaceState(Map<String, OnnxTensor> next, AutoCloseable owner) {
    AutoCloseable old = stateOwner;
    state = next;
    stateOwner = owner;
    if (old != null && old != owner) closeQuietly(old);
  }

  // ---- steps ---------------------------------------------------------------------------------

  /** One update on {@code batch} (batch inputs and labels by name), in one session run. */
  public StepResult trainStep(Map<String, Tensor> batch) throws OrtException {
    if (needsUnpaddingCheck(batch)) checkUnpadding(batch);
    long t = step + 1;
    try (Feeds feeds = new Feeds()) {
      feeds.batch(batch, true);
      feeds.state();
      feeds.scalars(t, schedule.lr(t));
      OrtSession.Result r;
      try {
        r = trainSession.run(feeds.map);
      } catch (OrtException e) {
        if (unpaddingChecked) throw e;
        // The padding-free graph, not yet checked (no padded batch so far), failed: train padded.
        giveUpUnpadding("its padding-free train step failed (" + e.getMessage() + ")");
        return trainStep(batch);
      }
      return adoptStep(r);
    }
  }

  /** Takes a train-step run's updated state as the trainer's own: the next step is done. */
  private StepResult adoptStep(OrtSession.Result r) {
    try {
      StepResult done = stepOf(r);
      adoptUpdatedState(r);
      step = done.step();
      return done;
    } catch (RuntimeException e) {
      if (stateOwner != r) r.close();
      throw e;
    }
  }

  /**
   * One update from the gradients of several micro-batches, averaged: {@code accumulate()} on
   * each, then {@code apply()} with scale 1/k. Equal to one step on their concatenation when they
   * are of equal size and the loss is a mean with no ignored labels (see {@link TrainStepGraph}).
   */
  public StepResult trainStep(List<Map<String, Tensor>> microBatches) throws OrtException {
    checkArgument(!microBatches.isEmpty(), "trainStep needs at least one micro-batch");
    if (microBatches.size() == 1) return trainStep(microBatches.get(0));
    for (Map<String, Tensor> mb : microBatches) if (needsUnpaddingCheck(mb)) checkUnpadding(mb);
    if (accumulateSession == null) accumulateSession = session(graphs.accumulate());
    if (applySession == null) applySession = session(graphs.apply());
    long t = step + 1;
    double lr = schedule.lr(t);
    double lossSum = 0;
    Tensor logits = null;
    Map<String, OnnxTensor> sums = new HashMap<>();
    List<OnnxTensor> zeros = new ArrayList<>();
    AutoCloseable sumsOwner = () -> zeros.forEach(OnnxTensor::close);
    try {
      for (TrainStepGraph.Param p : graphs.params()) {
        OnnxTensor z = OrtTensors.zeros(env, p.dims());
        zeros.add(z);
        sums.put(StateNames.gradSum(p.name()), z);
      }
      for (Map<String, Tensor> mb : microBatches) {
        OrtSession.Result r;
        try (Feeds feeds = new Feeds()) {
          feeds.batch(mb, true);
          feeds.params();
          feeds.map.putAll(sums);
          r = accumulateSession.run(feeds.map);
        }
        closeQuietly(sumsOwner);
        sumsOwner = r;
        lossSum += OrtTensors.scalar(get(r, StateNames.LOSS));
        logits = OrtTensors.toTensor(graphs.logits(), get(r, graphs.logits()));
        Map<String, OnnxTensor> next = new HashMap<>();
        for (String name : sums.keySet()) next.put(name, get(r, StateNames.updated(name)));
        sums = next;
      }
      try (Feeds feeds = new Feeds()) {
        feeds.state();
        feeds.map.putAll(sums);
        feeds.own(StateNames.GRAD_SCALE, OnnxTensor.createTensor(env, 1f / microBatches.size()));
        feeds.scalars(t, lr);
        OrtSession.Result r = applySession.run(feeds.map);
        try {
          double norm = OrtTensors.scalar(get(r, StateNames.GRAD_NORM));
          adoptUpdatedState(r);
          step = t;
          return new StepResult(t, lossSum / microBatches.size(), norm, lr, logits);
        } catch (RuntimeException e) {
          if (stateOwner != r) r.close();
          throw e;
        }
      }
    } finally {
      closeQuietly(sumsOwner);
    }
  }

  /** Loss and logits of {@code batch} under the current parameters; no update. */
  public EvalResult evalStep(Map<String, Tensor> batch) throws OrtException {
    if (needsUnpaddingCheck(batch)) checkUnpadding(batch);
    if (evalSession == null) evalSession = session(graphs.eval());
    try (Feeds feeds = new Feeds()) {
      feeds.batch(batch, true);
      feeds.params();
      try (OrtSession.Result r = evalSession.run(feeds.map)) {
        return new EvalResult(
            OrtTensors.scalar(get(r, StateNames.LOSS)),
            OrtTensors.toTensor(graphs.logits(), get(r, graphs.logits())));
      }
    }
  }

  // ---- padding-free training ------------------------------------------------------------------

  /**
   * Padding-free training ({@link Unpadding}) is exact only when the model ignores what padded
   * positions hold: the attention masks them, the head pools with the mask. The first batch with
   * padding is checked before its step: the train step runs, its update not kept, with the token
   * mask (padding-free) and with ones in its place (every row computed, as the padded graph
   * computes). Loss, logits at real tokens and gradient norm must agree, or the trainer reopens
   * its sessions on the padded graphs and says so. The check runs on two of the batch's rows,
   * the shortest (the most padding) and the longest (which sets the padded length), so that it
   * costs two runs of a sixteenth of a batch of 32; or on the whole batch when those rows are not
   * a batch the graph takes (an embedding batch's pairs span its rows). A batch without padding runs the
   * same either way and is not a test.
   */
  private boolean needsUnpaddingCheck(Map<String, Tensor> batch) {
    if (unpaddingChecked) return false;
    Tensor mask = batch.get(graphs.unpadMask().orElseThrow());
    if (mask == null || mask.dims().length != 2) return false; // Feeds.batch names what is missing
    return Unpadding.hasPadding(mask);
  }

  private void checkUnpadding(Map<String, Tensor> batch) throws OrtException {
    String mismatch = null;
    boolean checked = false;
    int rows = (int) batch.get(graphs.unpadMask().orElseThrow()).dims()[0];
    if (rows > 2) {
      try {
        mismatch = probe(fewRows(batch, rows));
        checked = true;
      } catch (OrtException | RuntimeException e) {
        // Those rows alone are not a batch this graph takes: check on the whole batch.
      }
    }
    if (!checked) {
      try {
        mismatch = probe(batch);
      } catch (OrtException | RuntimeException e) {
        giveUpUnpadding("its padding-free train step failed on the first padded batch (" + e.getMessage() + ")");
        return;
      }
    }
    unpaddingChecked = true;
    if (mismatch == null) {
      notes.accept(String.format(
          "padding-free training: %d token-wise nodes run on the real tokens only%s (checked on the first padded"
              + " batch against every row computed)", graphs.unpadding().orElseThrow().nodes(),
          packs() ? ", short rows share attention rows" : ""));
      return;
    }
    giveUpUnpadding("on the first padded batch " + mismatch + " differ from those of the padded computation, so"
        + " what padded positions hold reaches the loss (an attention without the mask, or a head that pools"
        + " padding)");
  }

  /** Says why, then reopens the sessions on the padded graphs. */
  private void giveUpUnpadding(String why) throws OrtException {
    unpaddingChecked = true;
    notes.accept("padding-free training is off for this model: " + why + ". Training on padded batches as they come.");
    TrainStepGraph padded = graphs.padded();
    // The padded session first: if it cannot be opened, the trainer stays as it was.
    OrtSession next = session(padded.trainStep(), trainOptions);
    graphs = padded;
    for (OrtSession s : Arrays.asList(evalSession, accumulateSession)) closeQuietly(s);
    evalSession = null;
    accumulateSession = null;
    OrtSession old = trainSession;
    trainSession = next;
    closeQuietly(old);
  }

  /**
   * The train step on {@code batch} with the token mask and with ones: what differs, or null. Its
   * runs log nothing below FATAL: a run that fails (a few rows that are not a batch the graph
   * takes) is caught and answered by the caller, not an error for the user to read.
   */
  private String probe(Map<String, Tensor> batch) throws OrtException {
    Tensor mask = batch.get(graphs.unpadMask().orElseThrow());
    long t = step + 1;
    try (Feeds feeds = new Feeds(); OrtSession.RunOptions quiet = new OrtSession.RunOptions()) {
      quiet.setLogLevel(OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL);
      feeds.batch(batch, true);
      feeds.state();
      feeds.scalars(t, schedule.lr(t));
      StepResult got;
      try (OrtSession.Result r = trainSession.run(feeds.map, quiet)) {
        got = stepOf(r);
      }
      Tensor everyRow = ones(mask);
      feeds.own(Unpadding.TOKEN_MASK, OrtTensors.toOrt(env, everyRow));
      if (packs()) feeds.own(Unpadding.PACKING, OrtTensors.toOrt(env, Unpadding.packing(everyRow)));
      try (OrtSession.Result r = trainSession.run(feeds.map, quiet)) {
        return mismatch(stepOf(r), got, mask);
      }
    }
  }

  /**
   * Whether the train session packs attention rows, so that batches also feed {@link
   * Unpadding#PACKING}: read from the session itself, which the eval and accumulate sessions
   * match (one rewrite made them all).
   */
  private boolean packs() {
    return trainSession.getInputNames().contains(Unpadding.PACKING);
  }

  /**
   * The two shortest rows and the longest (by mask), in batch order, of every batch-major tensor:
   * the shortest two pack side by side in one attention row when the graphs pack ({@link
   * Unpadding#packing}), so that the check covers the packed attention too.
   */
  private Map<String, Tensor> fewRows(Map<String, Tensor> batch, int rows) {
    int[] tokens = Unpadding.rowLengths(batch.get(graphs.unpadMask().orElseThrow()));
    Integer[] order = new Integer[rows];
    for (int r = 0; r < rows; r++) order[r] = r;
    Arrays.sort(order, Comparator.comparingInt(r -> tokens[r]));
    TreeSet<Integer> pick = new TreeSet<>(List.of(order[0], order[1], order[rows - 1]));
    Map<String, Tensor> out = new HashMap<>();
    for (Map.Entry<String, Tensor> e : batch.entrySet()) {
      Tensor t = e.getValue();
      long[] dims = t.dims();
      if (dims.length == 0 || dims[0] != rows) {
        out.put(e.getKey(), t);
        continue;
      }
      long rowBytes = t.byteSize() / rows;
      ByteBuffer src = t.rawData().duplicate();
      ByteBuffer dst = ByteBuffer.allocate((int) (rowBytes * pick.size())).order(ByteOrder.LITTLE_ENDIAN);
      int base = src.position();
      for (int r : pick) {
        ByteBuffer slice = src.duplicate();
        slice.limit((int) (base + (r + 1) * rowBytes)).position((int) (base + r * rowBytes));
        dst.put(slice);
      }
      dst.flip();
      long[] d = dims.clone();
      d[0] = pick.size();
      out.put(e.getKey(), DenseTensor.ofRaw(t.name(), t.dataType(), d, dst));
    }
    return out;
  }

  /** Loss, gradient norm and logits of a train-step run for the next step; the update not taken. */
  private StepResult stepOf(OrtSession.Result r) {
    return new StepResult(
        step + 1,
        OrtTensors.scalar(get(r, StateNames.LOSS)),
        OrtTensors.scalar(get(r, StateNames.GRAD_NORM)),
        schedule.lr(step + 1),
        OrtTensors.toTensor(graphs.logits(), get(r, graphs.logits())));
  }

  /** Ones in the shape and type of {@code mask}. */
  private static Tensor ones(Tensor mask) {
    long[] dims = mask.dims();
    int n = (int) mask.numElements();
    return switch (mask.dataType()) {
      case INT64 -> { long[] v = new long[n]; Arrays.fill(v, 1); yield DenseTensor.ofLongs(null, dims, v); }
      case INT32 -> { int[] v = new int[n]; Arrays.fill(v, 1); yield DenseTensor.ofInts(null, dims, v); }
      case FLOAT -> { float[] v = new float[n]; Arrays.fill(v, 1); yield DenseTensor.ofFloats(null, dims, v); }
      case DOUBLE -> { double[] v = new double[n]; Arrays.fill(v, 1); yield DenseTensor.ofDoubles(null, dims, v); }
      case BOOL -> { boolean[] v = new boolean[n]; Arrays.fill(v, true); yield DenseTensor.ofBools(null, dims, v); }
      default -> throw new IllegalArgumentException(
          "The attention mask is " + mask.dataType() + "; padding-free training reads int64, int32, float,"
              + " double or bool masks. Train with --no-unpad.");
    };
  }

  /** What differs (loss, logits at real tokens) beyond float rounding, or null. */
  private static String mismatch(StepResult want, StepResult got, Tensor mask) {
    if (!close(got.loss(), want.loss(), Math.abs(want.loss()))) {
      return String.format("the loss (%.6g against %.6g)", got.loss(), want.loss());
    }
    if (!(Math.abs(got.gradNorm() - want.gradNorm()) <= 1e-6 + 1e-3 * Math.abs(want.gradNorm()))) {
      return String.format("the gradients (norm %.6g against %.6g)", got.gradNorm(), want.gradNorm());
    }
    double[] w = want.logits().toDoubleArray();
    double[] g = got.logits().toDoubleArray();
    long[] dims = want.logits().dims();
    double[] m = mask.toDoubleArray();
    // Token-major logits [batch, seq, ...] are compared at real tokens only: padded rows are zeros now.
    boolean perToken = dims.length >= 3 && dims[0] == mask.dims()[0] && dims[1] == mask.dims()[1];
    int perRow = perToken ? (int) (w.length / (dims[0] * dims[1])) : 1;
    double scale = 0;
    for (double x : w) scale = Math.max(scale, Math.abs(x));
    for (int i = 0; i < w.length; i++) {
      if (perToken && m[i / perRow] == 0) continue;
      if (!close(g[i], w[i], scale)) return String.format("the logits (%.6g against %.6g at element %d)", g[i], w[i], i);
    }
    return null;
  }

  private static boolean close(double got, double want, double scale) {
    return Math.abs(got - want) <= 1e-5 + 1e-4 * scale || (Double.isNaN(got) && Double.isNaN(want));
  }

  private void adoptUpdatedState(OrtSession.Result r) {
    Map<String, OnnxTensor> next = new HashMap<>();
    for (String name : state.keySet()) next.put(name, get(r, StateNames.updated(name)));
    replaceState(next, r);
  }

  private static OnnxTensor get(OrtSession.Result r, String name) {
    OnnxValue v =
        r.get(name)
            .orElseThrow(() -> new IllegalStateException("The session returned no output '" + name + "'"));
    return (OnnxTensor) v;
  }

  /** The inputs of one run: the tensors this class made for it are closed with it. */
  private final class Feeds implements AutoCloseable {
    final Map<String, OnnxTensor> map = new HashMap<>();
    final List<OnnxTensor> owned = new ArrayList<>();

    void own(String name, OnnxTensor t) {
      owned.add(t);
      map.put(name, t);
    }

    void batch(Map<String, Tensor> batch, boolean withLabels) throws OrtException {
      Set<String> expected = new TreeSet<>(graphs.batchInputs());
      if (withLabels) expected.add(graphs.labels());
      checkArgument(
          batch.keySet().equals(expected),
          "The batch feeds %s, but the graph takes exactly %s (the model's inputs and the labels).",
          new TreeSet<>(batch.keySet()),
          expected);
      for (Map.Entry<String, Tensor> e : batch.entrySet()) own(e.getKey(), OrtTensors.toOrt(env, e.getValue()));
      // Padding-free graphs read which rows are real from an input of their own (Unpadding).
      Optional<String> mask = graphs.unpadMask();
      if (mask.isEmpty()) return;
      map.put(Unpadding.TOKEN_MASK, map.get(mask.get()));
      if (packs()) own(Unpadding.PACKING, OrtTensors.toOrt(env, Unpadding.packing(batch.get(mask.get()))));
    }

    void params() {
      for (TrainStepGraph.Param p : graphs.params()) map.put(p.name(), state.get(p.name()));
    }

    void state() {
      map.putAll(state);
    }

    void scalars(long t, double lr) throws OrtException {
      own(StateNames.STEP, OnnxTensor.createTensor(env, t));
      own(StateNames.LEARNING_RATE, OnnxTensor.createTensor(env, (float) lr));
    }

    @Override
    public void close() {
      owned.forEach(OnnxTensor::close);
    }
  }

  // ---- state -----------------------------------------------------------------------------------

  /** The number of updates made so far. */
  public long step() {
    return step;
  }

  public Device device() {
    return device;
  }

  public LrSchedule schedule() {
    return schedule;
  }

  public TrainStepGraph graphs() {
    return graphs;
  }

  /** Copies of the current trainable parameters, by initializer name. */
  public ImmutableMap<String, Tensor> parameters() {
    ImmutableMap.Builder<String, Tensor> out = ImmutableMap.builder();
    for (TrainStepGraph.Param p : graphs.params()) {
      out.put(p.name(), OrtTensors.toTensor(p.name(), state.get(p.name())));
    }
    return out.buildOrThrow();
  }

  /** The forward model with the trained values written into the trainable initializers. */
  public Model exportTrainedModel() {
    Model m = graphs.forward();
    Graph g = m.graph();
    for (TrainStepGraph.Param p : graphs.params()) {
      Value v = g.initializer(p.name()).orElseThrow();
      g.setInitializer(
          v, DenseTensor.ofFloats(p.name(), p.dims(), OrtTensors.floats(state.get(p.name()))));
    }
    return m;
  }

  /** Parameters and moments under their graph input names, and the step: what a checkpoint holds. */
  ImmutableMap<String, Tensor> stateTensors() {
    Map<String, Tensor> out = new LinkedHashMap<>();
    for (TrainStepGraph.Param p : graphs.params()) {
      for (String name : List.of(p.name(), StateNames.m(p.name()), StateNames.v(p.name()))) {
        out.put(name, OrtTensors.toTensor(name, state.get(name)));
      }
    }
    return ImmutableMap.copyOf(out);
  }

  /** Replaces parameters, moments and step; every state tensor must be given with its dims. */
  void restore(Map<String, Tensor> tensors, long restoredStep) throws OrtException {
    checkArgument(restoredStep >= 0, "a restored step must not be negative, got %s", restoredStep);
    Set<String> missing = new TreeSet<>(state.keySet());
    missing.removeAll(tensors.keySet());
    checkArgument(missing.isEmpty(), "The checkpoint lacks %s, which this trainer's graph needs", missing);
    Set<String> extra = new TreeSet<>(tensors.keySet());
    extra.removeAll(state.keySet());
    checkArgument(
        extra.isEmpty(),
        "The checkpoint holds %s, which this trainer does not train: it was made for other"
            + " trainables. Build the trainer with the same trainable parameters.",
        extra);
    Map<String, long[]> dims = new HashMap<>();
    for (TrainStepGraph.Param p : graphs.params()) {
      for (String name : List.of(p.name(), StateNames.m(p.name()), StateNames.v(p.name()))) {
        dims.put(name, p.dims());
      }
    }
    for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
      checkArgument(
          Arrays.equals(e.getValue().dims(), dims.get(e.getKey())),
          "Checkpoint tensor '%s' has dims %s, but the parameter has %s",
          e.getKey(),
          Arrays.toString(e.getValue().dims()),
          Arrays.toString(dims.get(e.getKey())));
    }
    Map<String, OnnxTensor> next = new HashMap<>();
    List<OnnxTensor> owned = new ArrayList<>();
    try {
      for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
        OnnxTensor t = OrtTensors.toOrt(env, e.getValue());
        owned.add(t);
        next.put(e.getKey(), t);
      }
    } catch (OrtException | RuntimeException e) {
      owned.forEach(OnnxTensor::close);
      throw e;
    }
    replaceState(next, () -> owned.forEach(OnnxTensor::close));
    step = restoredStep;
  }

  /** Writes a checkpoint (see {@link Checkpoints}). */
  public void saveCheckpoint(Path file) {
    Checkpoints.save(this, file);
  }

  /** Restores a checkpoint written by a trainer with the same trainables and optimizer. */
  public void loadCheckpoint(Path file) throws OrtException {
    Checkpoints.load(this, file);
  }

  @Override
  public void close() {
    closeQuietly(stateOwner);
    stateOwner = null;
    for (OrtSession s : Arrays.asList(trainSession, evalSession, accumulateSession, applySession)) {
      closeQuietly(s);
    }
    if (trainOptions != options) trainOptions.close();
    options.close();
    sharedWeights.close();
  }

  /** Closes ORT objects; their close() declares Exception but only fails on a broken runtime. */
  private static void closeQuietly(AutoCloseable c) {
    if (c == null) return;
    try {
      c.close();
    } catch (Exception e) {
      throw new IllegalStateException("Closing " + c + " failed: " + e.getMessage(), e);
    }
  }

  /** How many frozen weights the sessions share (0 with pre-packing on, or on CUDA). */
  int sharedWeightCount() {
    return sharedWeights.count();
  }

  /** The names of the trainable parameters, in graph order. */
  public ImmutableList<String> trainableNames() {
    return graphs.params().stream().map(TrainStepGraph.Param::name).collect(ImmutableList.toImmutableList());
  }
}
