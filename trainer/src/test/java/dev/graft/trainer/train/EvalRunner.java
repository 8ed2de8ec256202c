package dev.graft.trainer.train;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.graft.ir.Model;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import java.util.HashMap;
import java.util.Map;

/** One open eval session: the loss with one parameter replaced, for finite differences. */
final class EvalRunner implements AutoCloseable {
  private final OrtEnvironment env = OrtEnvironment.getEnvironment();
  private final OrtSession.SessionOptions options = new OrtSession.SessionOptions();
  private final OrtSession session;
  private final Map<String, OnnxTensor> feeds = new HashMap<>();
  private final Map<String, long[]> dims = new HashMap<>();

  EvalRunner(Model eval, Map<String, Tensor> values) throws Exception {
    options.setIntraOpNumThreads(1);
    session = env.createSession(ModelIO.toBytes(eval), options);
    for (String in : session.getInputNames()) {
      feeds.put(in, OrtTensors.toOrt(env, values.get(in)));
      dims.put(in, values.get(in).dims());
    }
  }

  double loss(String param, float[] value) throws Exception {
    Map<String, OnnxTensor> run = new HashMap<>(feeds);
    try (OnnxTensor t = OrtTensors.toOrt(env, DenseTensor.ofFloats(param, dims.get(param), value));
        OrtSession.Result r = session.run(withParam(run, param, t), java.util.Set.of(StateNames.LOSS))) {
      return OrtTensors.scalar((OnnxTensor) r.get(0));
    }
  }

  private static Map<String, OnnxTensor> withParam(Map<String, OnnxTensor> m, String name, OnnxTensor t) {
    m.put(name, t);
    return m;
  }

  @Override
  public void close() throws Exception {
    feeds.values().forEach(OnnxTensor::close);
    session.close();
    options.close();
  }
}
