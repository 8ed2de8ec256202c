package dev.graft.trainer.train;

import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.OrtSession.SessionOptions;

/**
 * The ONNX Runtime session settings of the training sessions, in one place, each chosen by
 * measurement on the train-step graph of all-MiniLM-L6-v2 with LoRA (docs/performance.md has the
 * figures):
 *
 * <ul>
 *   <li>all graph optimisations, one inter-op thread, sequential execution: a train step is one
 *       long chain, so parallel execution only adds scheduling;
 *   <li>intra-op threads as asked (0: ORT's choice);
 *   <li>{@code session.intra_op.allow_spinning} off by default: the trainer's Java work between
 *       runs is short, but with spinning on, idle pool threads burn a core that the next run's
 *       kernels (or the JVM, or a second process) need; {@code -Dgraft.ort.spin=1} turns it on;
 *   <li>the memory pattern off: ORT plans one block per input shape, sized for that shape's peak,
 *       and keeps it; with dynamic padding every batch length is a new shape, and even at one
 *       shape the planned block held about 500 MB more at the peak (MiniLM, LoRA, 32 x 64) for
 *       no measurable speed-up. {@code -Dgraft.ort.memoryPattern=1} turns it back on;
 *   <li>the CPU arena on ({@code -Dgraft.ort.arena=0} turns it off, for experiments);
 *   <li>pre-packing off ({@code -Dgraft.ort.prepack=1} turns it on): ORT packs a constant MatMul
 *       weight once per kernel that reads it, so a frozen linear weight, read by its forward MatMul
 *       and (through {@link FrozenWeightTransposes}) by the backward FusedMatMul, was held as two
 *       packed copies; unpacked it is held once, the session file's own. Peak RSS of
 *       {@code TrainStepBenchmark} (MiniLM, LoRA, 32 x 64) 1,057 -> 1,006-1,011 MB, process CPU
 *       time per step within the noise (docs/performance.md);
 *   <li>the train-step session alone pre-packs ({@link #trainPrepacking}, session 6): the forward
 *       MatMuls read packed weights, the backward FusedMatMuls the shared unpacked ones, so the
 *       weights are held twice there and once for every other session. With padding-free
 *       training the memory is there to spend: 4-5% a step on the side-by-side bench for about
 *       40 MiB (docs/performance.md, "Session 6");
 *   <li>{@code -Dgraft.ort.profile=PREFIX} writes ORT's JSON profile of every session the
 *       trainer opens ({@code PREFIX_<date>.json}), to find where a step's time goes.
 * </ul>
 */
public final class TrainSessionOptions {
  /** System properties that override the defaults, for measuring (see the class comment). */
  public static final String SPIN = "graft.ort.spin";
  public static final String ARENA = "graft.ort.arena";
  public static final String MEMORY_PATTERN = "graft.ort.memoryPattern";
  public static final String PROFILE = "graft.ort.profile";
  public static final String PREPACK = "graft.ort.prepack";
  public static final String PREPACK_TRAIN = "graft.ort.prepackTrain";

  private TrainSessionOptions() {}

  /**
   * New options for {@code device} with {@code intraOpThreads} (0: ORT's choice); the caller
   * closes them. A missing CUDA provider is an {@link IllegalStateException} saying what to install.
   */
  public static SessionOptions create(Device device, int intraOpThreads) throws OrtException {
    return create(device, intraOpThreads, prepacking());
  }

  /** As {@link #create(Device, int)}, with pre-packing on or off as given. */
  public static SessionOptions create(Device device, int intraOpThreads, boolean prepack) throws OrtException {
    SessionOptions o = new SessionOptions();
    try {
      if (intraOpThreads > 0) o.setIntraOpNumThreads(intraOpThreads);
      o.setInterOpNumThreads(1);
      o.setExecutionMode(SessionOptions.ExecutionMode.SEQUENTIAL);
      o.setOptimizationLevel(SessionOptions.OptLevel.ALL_OPT);
      o.addConfigEntry("session.intra_op.allow_spinning", flag(SPIN, false) ? "1" : "0");
      o.setCPUArenaAllocator(flag(ARENA, true));
      o.setMemoryPatternOptimization(flag(MEMORY_PATTERN, false));
      if (!prepack) o.addConfigEntry("session.disable_prepacking", "1");
      String profile = System.getProperty(PROFILE, "");
      if (!profile.isEmpty()) o.enableProfiling(profile);
      if (device.kind() == Device.Kind.CUDA) {
        try {
          o.addCUDA(device.index());
        } catch (OrtException | UnsatisfiedLinkError e) {
          throw new IllegalStateException(
              "Cannot use device " + device + ": " + Trainer.CUDA_HELP + ". ONNX Runtime said: " + e.getMessage(), e);
        }
      }
      return o;
    } catch (OrtException | RuntimeException e) {
      o.close();
      throw e;
    }
  }

  /**
   * Whether the train-step session pre-packs the frozen weights of its forward MatMuls beside the
   * shared unpacked ones (on unless {@code -Dgraft.ort.prepackTrain=0}); the eval and accumulate
   * sessions read the shared weights unpacked. See {@link Trainer}.
   */
  public static boolean trainPrepacking() {
    return flag(PREPACK_TRAIN, true);
  }

  /** Whether every session pre-packs constant MatMul weights (off unless {@code -Dgraft.ort.prepack=1}). */
  public static boolean prepacking() {
    return flag(PREPACK, false);
  }

  private static boolean flag(String property, boolean dflt) {
    String v = System.getProperty(property);
    if (v == null || v.isEmpty()) return dflt;
    return !(v.equals("0") || v.equalsIgnoreCase("false") || v.equalsIgnoreCase("off"));
  }
}
