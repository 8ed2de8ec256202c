package dev.graft.tools.maven;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import java.nio.FloatBuffer;
import java.nio.file.Path;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Runs a BERT-like model file on ONNX Runtime: the tests' oracle, independent of the exporter's
 * own verification.
 */
final class Ort {
  private static final OrtEnvironment ENV = OrtEnvironment.getEnvironment();

  private Ort() {}

  /** last_hidden_state for a fixed batch of 2 x 8 random tokens below {@code vocab}. */
  static float[] hiddenState(Path model, int vocab) throws OrtException {
    long[][] ids = new long[2][8];
    long[][] mask = new long[2][8];
    long[][] types = new long[2][8];
    SplittableRandom r = new SplittableRandom(7);
    for (int b = 0; b < 2; b++) {
      for (int s = 0; s < 8; s++) {
        ids[b][s] = r.nextInt(vocab);
        mask[b][s] = b == 1 && s >= 6 ? 0 : 1; // one padded sequence
      }
    }
    try (OrtSession session = ENV.createSession(model.toString(), new OrtSession.SessionOptions());
        OnnxTensor i = OnnxTensor.createTensor(ENV, ids);
        OnnxTensor m = OnnxTensor.createTensor(ENV, mask);
        OnnxTensor t = OnnxTensor.createTensor(ENV, types);
        OrtSession.Result out =
            session.run(Map.of("input_ids", i, "attention_mask", m, "token_type_ids", t))) {
      FloatBuffer fb = ((OnnxTensor) out.get(0)).getFloatBuffer();
      float[] v = new float[fb.remaining()];
      fb.get(v);
      return v;
    }
  }

  static double maxAbsDiff(float[] a, float[] b) {
    if (a.length != b.length) throw new AssertionError("lengths differ: " + a.length + " vs " + b.length);
    double m = 0;
    for (int i = 0; i < a.length; i++) m = Math.max(m, Math.abs((double) a[i] - b[i]));
    return m;
  }
}
