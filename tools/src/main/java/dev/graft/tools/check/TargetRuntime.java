package dev.graft.tools.check;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMap;
import dev.graft.ir.tensor.Tensor;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * One inference engine a model can be checked in: ONNX Runtime's Java build (Graft's own, the
 * reference), ONNX Runtime for Node.js, OpenCV's DNN module. Each runs a model file on the same
 * feeds and hands back every output and the time of each timed run; a runtime that will not load
 * or run the model throws {@link Refusal} with its own message.
 */
public interface TargetRuntime {

  /** The name {@code graft check --runtime} takes: {@code ort-java}, {@code ort-node}, {@code opencv}. */
  String name();

  /** Runs {@code model} {@code warmup} times untimed, then {@code runs} times timed. */
  Run run(Path model, Map<String, Tensor> feeds, RunSettings settings) throws Refusal;

  /**
   * Runs {@code model} (a {@code base_with_lora_inputs.onnx}) with each ONNX Runtime adapter file
   * ({@code .onnx_adapter}) active in turn, all in one session: one {@link Run} per adapter, in
   * order. Runtimes that cannot serve adapters refuse.
   */
  default ImmutableList<Run> runAdapters(Path model, Map<String, Tensor> feeds, List<Path> adapters, RunSettings settings)
      throws Refusal {
    throw new Refusal(
        "load",
        null,
        name() + " cannot serve ONNX Runtime adapter files (no adapter API, and no way to feed an adapter's tensors)");
  }

  /** What a timed run produced: the engine and its version, the outputs by name, each latency. */
  record Run(String engine, ImmutableMap<String, Tensor> outputs, ImmutableList<Double> latenciesMs) {}

  /** How to time: untimed warm-up runs, timed runs, intra-op threads. */
  record RunSettings(int warmup, int runs, int threads) {
    public RunSettings {
      if (warmup < 0 || runs < 1 || threads < 1) {
        throw new IllegalArgumentException(
            "Timing needs warm-up >= 0, runs >= 1 and threads >= 1; got " + warmup + ", " + runs + ", " + threads);
      }
    }
  }

  /**
   * The runtime did not load or run the model. {@code stage} is {@code install}, {@code load} or
   * {@code run}; {@code op} the operator it names, when its message names one.
   */
  final class Refusal extends Exception {
    private final String stage;
    private final String op;

    public Refusal(String stage, String op, String message) {
      super(message);
      this.stage = stage;
      this.op = op;
    }

    public String stage() {
      return stage;
    }

    /** The refused operator, or null. */
    public String op() {
      return op;
    }
  }
}
