package dev.graft.trainer.generate;

import static com.google.common.base.Preconditions.checkArgument;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import dev.graft.trainer.data.ByteTokenizer;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Continues a prompt with a decoder language model on ONNX Runtime, one byte token at a time:
 * greedy (the most likely next token) or nucleus sampling (top-p, with a temperature). The model
 * maths is ORT's; Java only picks a token from the last position's 256 logits.
 *
 * <pre>
 *   step 0:  input_ids = prompt, past_key_values.* = empty [b, kv_heads, 0, head_dim]
 *   step k:  input_ids = [last token], past_key_values.* = present.* of step k-1,
 *            attention_mask = ones [1, prompt + k], position_ids = [prompt + k - 1]
 * </pre>
 *
 * A model without past key/values inputs is run on the whole sequence at every step.
 */
public final class TextGenerator implements AutoCloseable {
  /** How to pick tokens. {@code topP} 0 means greedy. */
  public record Options(int maxNewTokens, double topP, double temperature, long seed) {
    public Options {
      checkArgument(maxNewTokens >= 0, "--max-new-tokens must not be negative, got %s", maxNewTokens);
      checkArgument(topP >= 0 && topP <= 1, "--top-p must lie in [0, 1] (0 for greedy), got %s", topP);
      checkArgument(temperature > 0, "--temperature must be positive, got %s", temperature);
    }
  }

  private static final OrtEnvironment ENV = OrtEnvironment.getEnvironment();

  private final OrtSession session;
  private final List<String> pastInputs = new ArrayList<>();
  private final Map<String, long[]> pastShapes = new HashMap<>();
  private final boolean positions;
  private final boolean mask;

  /** Opens {@code model} (from its file, so external weights stay there). */
  public TextGenerator(Path model, int threads) throws OrtException {
    OrtSession.SessionOptions o = new OrtSession.SessionOptions();
    if (threads > 0) o.setIntraOpNumThreads(threads);
    this.session = ENV.createSession(model.toString(), o);
    Map<String, NodeInfo> inputs = session.getInputInfo();
    checkArgument(inputs.containsKey("input_ids") && session.getOutputNames().contains("logits"),
        "%s is not a decoder language model: generation feeds 'input_ids' and reads 'logits' (its inputs are %s,"
            + " its outputs %s).", model, inputs.keySet(), session.getOutputNames());
    for (Map.Entry<String, NodeInfo> e : inputs.entrySet()) {
      String name = e.getKey();
      if (name.startsWith("past_key_values.")) {
        String present = "present." + name.substring("past_key_values.".length());
        checkArgument(session.getOutputNames().contains(present),
            "%s has the cache input '%s' but no output '%s' to carry it on.", model, name, present);
        long[] s = ((TensorInfo) e.getValue().getInfo()).getShape();
        checkArgument(s.length == 4 && s[1] > 0 && s[3] > 0,
            "%s: cache input '%s' should be [batch, kv_heads, past, head_dim] with fixed heads and size, got %s",
            model, name, java.util.Arrays.toString(s));
        pastInputs.add(name);
        pastShapes.put(name, new long[] {1, s[1], 0, s[3]});
      } else if (!List.of("input_ids", "attention_mask", "position_ids").contains(name)) {
        throw new IllegalArgumentException(model + " reads '" + name + "', which generation does not know how to feed"
            + " (it feeds input_ids, attention_mask, position_ids and past_key_values.*).");
      }
    }
    this.positions = inputs.containsKey("position_ids");
    this.mask = inputs.containsKey("attention_mask");
  }

  /** Whether the model carries a KV cache from step to step. */
  public boolean cached() {
    return !pastInputs.isEmpty();
  }

  /** The prompt's continuation (the new text only). */
  public String generate(String prompt, Options options) throws OrtException {
    long[] promptIds = ByteTokenizer.encode(prompt);
    checkArgument(promptIds.length > 0, "the prompt is empty; give some text to continue");
    List<Long> all = new ArrayList<>();
    for (long t : promptIds) all.add(t);
    SplittableRandom random = new SplittableRandom(options.seed());
    Map<String, OnnxTensor> past = new HashMap<>();
    try {
      for (String name : pastInputs) {
        past.put(name, OnnxTensor.createTensor(ENV, FloatBuffer.allocate(0), pastShapes.get(name)));
      }
      List<Long> fresh = new ArrayList<>();
      long[] step = promptIds;
      for (int k = 0; k < options.maxNewTokens(); k++) {
        int start = cached() ? all.size() - step.length : 0;
        if (!cached()) step = toArray(all);
        float[] logits;
        try {
          logits = run(step, start, all.size(), past);
        } catch (OrtException e) {
          if (k == 0) throw e;
          // The prompt ran, a longer sequence does not: the model's position tables (rotary
          // cos/sin, learned positions) or its cache end here. That is the model's context length.
          throw new IllegalArgumentException(String.format(
              "The model could not run at position %d (ONNX Runtime: %s). Its context probably ends there:"
                  + " with this %d-byte prompt, generate at most %d new tokens (--max-new-tokens %d).",
              all.size() - 1, e.getMessage(), promptIds.length, k, k), e);
        }
        long next = pick(logits, options, random);
        fresh.add(next);
        all.add(next);
        step = new long[] {next};
      }
      return ByteTokenizer.decode(toArray(fresh));
    } finally {
      past.values().forEach(OnnxTensor::close);
    }
  }

  /** Runs one step; returns the last position's logits and moves the presents into {@code past}. */
  private float[] run(long[] ids, int start, int total, Map<String, OnnxTensor> past) throws OrtException {
    Map<String, OnnxTensor> feeds = new HashMap<>(past);
    List<OnnxTensor> owned = new ArrayList<>();
    try {
      owned.add(OnnxTensor.createTensor(ENV, LongBuffer.wrap(ids), new long[] {1, ids.length}));
      feeds.put("input_ids", owned.get(owned.size() - 1));
      if (mask) {
        long[] ones = new long[total];
        java.util.Arrays.fill(ones, 1);
        owned.add(OnnxTensor.createTensor(ENV, LongBuffer.wrap(ones), new long[] {1, total}));
        feeds.put("attention_mask", owned.get(owned.size() - 1));
      }
      if (positions) {
        long[] p = new long[ids.length];
        for (int i = 0; i < p.length; i++) p[i] = start + i;
        owned.add(OnnxTensor.createTensor(ENV, LongBuffer.wrap(p), new long[] {1, p.length}));
        feeds.put("position_ids", owned.get(owned.size() - 1));
      }
      try (OrtSession.Result r = session.run(feeds)) {
        OnnxTensor logits = (OnnxTensor) r.get("logits").orElseThrow();
        long[] shape = logits.getInfo().getShape();
        int vocab = (int) shape[2];
        FloatBuffer fb = logits.getFloatBuffer();
        float[] last = new float[vocab];
        fb.position((int) ((shape[1] - 1) * vocab));
        fb.get(last);
        for (String name : pastInputs) {
          OnnxTensor present = (OnnxTensor) r.get("present." + name.substring("past_key_values.".length())).orElseThrow();
          FloatBuffer data = present.getFloatBuffer();
          float[] values = new float[data.remaining()];
          data.get(values); // a heap copy: the result's memory goes when it closes
          OnnxTensor copy = OnnxTensor.createTensor(ENV, FloatBuffer.wrap(values), present.getInfo().getShape());
          past.put(name, copy).close();
        }
        return last;
      }
    } finally {
      owned.forEach(OnnxTensor::close);
    }
  }

  /** Greedy, or a draw from the smallest set of tokens whose probability reaches top-p. */
  static long pick(float[] logits, Options o, SplittableRandom random) {
    int vocab = Math.min(logits.length, ByteTokenizer.VOCAB);
    if (o.topP() == 0) {
      int best = 0;
      for (int i = 1; i < vocab; i++) if (logits[i] > logits[best]) best = i;
      return best;
    }
    double max = Double.NEGATIVE_INFINITY;
    for (int i = 0; i < vocab; i++) max = Math.max(max, logits[i]);
    double[] p = new double[vocab];
    double sum = 0;
    for (int i = 0; i < vocab; i++) sum += p[i] = Math.exp((logits[i] - max) / o.temperature());
    Integer[] order = new Integer[vocab];
    for (int i = 0; i < vocab; i++) order[i] = i;
    java.util.Arrays.sort(order, (a, b) -> Double.compare(p[b], p[a]));
    double kept = 0;
    int n = 0;
    while (n < vocab && (n == 0 || kept < o.topP() * sum)) kept += p[order[n++]];
    double u = random.nextDouble() * kept;
    for (int i = 0; i < n; i++) {
      u -= p[order[i]];
      if (u <= 0) return order[i];
    }
    return order[n - 1];
  }

  private static long[] toArray(List<Long> l) {
    long[] a = new long[l.size()];
    for (int i = 0; i < a.length; i++) a[i] = l.get(i);
    return a;
  }

  @Override
  public void close() throws OrtException {
    session.close();
  }
}
