package dev.graft.trainer.train;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.graft.ir.Model;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.Tensor;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Runs a model once in a fresh CPU session (one thread): every output, by name. */
final class OrtRun {
  private OrtRun() {}

  static Map<String, Tensor> run(Model m, Map<String, Tensor> feeds) throws Exception {
    return run(m, feeds, OrtSession.SessionOptions.OptLevel.ALL_OPT);
  }

  /** With ORT's graph optimizations off: an oracle that ORT does not fuse into what it checks. */
  static Map<String, Tensor> runUnoptimized(Model m, Map<String, Tensor> feeds) throws Exception {
    return run(m, feeds, OrtSession.SessionOptions.OptLevel.NO_OPT);
  }

  private static Map<String, Tensor> run(Model m, Map<String, Tensor> feeds, OrtSession.SessionOptions.OptLevel level)
      throws Exception {
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    List<OnnxTensor> owned = new ArrayList<>();
    try (OrtSession.SessionOptions o = new OrtSession.SessionOptions()) {
      o.setIntraOpNumThreads(1);
      o.setOptimizationLevel(level);
      try (OrtSession s = env.createSession(ModelIO.toBytes(m), o)) {
        Map<String, OnnxTensor> in = new HashMap<>();
        for (Map.Entry<String, Tensor> e : feeds.entrySet()) {
          OnnxTensor t = OrtTensors.toOrt(env, e.getValue());
          owned.add(t);
          in.put(e.getKey(), t);
        }
        try (OrtSession.Result r = s.run(in)) {
          Map<String, Tensor> out = new LinkedHashMap<>();
          for (Map.Entry<String, OnnxValue> e : r) {
            out.put(e.getKey(), OrtTensors.toTensor(e.getKey(), (OnnxTensor) e.getValue()));
          }
          return out;
        }
      }
    } finally {
      owned.forEach(OnnxTensor::close);
    }
  }
}
