package dev.graft.rewrite;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.fixtures.PretrainedModels;
import dev.graft.ir.DataType;
import dev.graft.ir.Dim;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Shape;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.io.ModelIO;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.nio.file.Files;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Test helper: runs models in ONNX Runtime, the only executor of tensor maths here. */
public final class Ort {
  public static final OrtEnvironment ENV = OrtEnvironment.getEnvironment();

  /** One output: shape and row-major data. */
  public record Out(long[] shape, float[] data) {}

  /** One input: int64 or float data with its shape. */
  public record In(long[] shape, long[] longs, float[] floats) {
    public static In longs(long[] shape, long... v) {
      return new In(shape, v, null);
    }

    public static In floats(long[] shape, float... v) {
      return new In(shape, null, v);
    }
  }

  private Ort() {}

  public static Map<String, Out> run(Model m, Map<String, In> inputs) {
    try (OrtSession.SessionOptions o = new OrtSession.SessionOptions();
        OrtSession s = ENV.createSession(ModelIO.toBytes(m), o)) {
      Map<String, OnnxTensor> feeds = new LinkedHashMap<>();
      try {
        for (Map.Entry<String, In> e : inputs.entrySet()) {
          In in = e.getValue();
          feeds.put(
              e.getKey(),
              in.longs() != null
                  ? OnnxTensor.createTensor(ENV, LongBuffer.wrap(in.longs()), in.shape())
                  : OnnxTensor.createTensor(ENV, FloatBuffer.wrap(in.floats()), in.shape()));
        }
        Map<String, Out> out = new LinkedHashMap<>();
        try (OrtSession.Result r = s.run(feeds)) {
          for (Map.Entry<String, OnnxValue> e : r) {
            OnnxTensor t = (OnnxTensor) e.getValue();
            FloatBuffer fb = t.getFloatBuffer();
            float[] d = new float[fb.remaining()];
            fb.get(d);
            out.put(e.getKey(), new Out(t.getInfo().getShape(), d));
          }
        }
        return out;
      } finally {
        feeds.values().forEach(OnnxTensor::close);
      }
    } catch (OrtException e) {
      throw new IllegalStateException("ORT failed: " + e.getMessage(), e);
    }
  }

  public static double maxAbsDiff(float[] a, float[] b) {
    if (a.length != b.length) throw new AssertionError("lengths " + a.length + " vs " + b.length);
    double m = 0;
    for (int i = 0; i < a.length; i++) m = Math.max(m, Math.abs((double) a[i] - b[i]));
    return m;
  }

  /** Makes {@code v} an extra graph output (float, rank {@code rank}, sizes unknown). */
  public static void expose(Graph g, Value v, int rank) {
    Dim[] dims = new Dim[rank];
    Arrays.fill(dims, Dim.unknown());
    if (v.type().isEmpty()) v.setType(Type.tensor(DataType.FLOAT, Shape.of(dims)));
    g.addOutput(v);
  }

  /** WordPiece ids of whole words from MiniLM's tokenizer.json vocabulary. */
  public static long[] miniLmIds(List<String> tokens) throws Exception {
    JsonObject vocab =
        JsonParser.parseString(Files.readString(PretrainedModels.miniLmTokenizer()))
            .getAsJsonObject()
            .getAsJsonObject("model")
            .getAsJsonObject("vocab");
    long[] ids = new long[tokens.size()];
    for (int i = 0; i < ids.length; i++) {
      JsonElement id = vocab.get(tokens.get(i));
      if (id == null) throw new AssertionError("'" + tokens.get(i) + "' is not in MiniLM's vocabulary");
      ids[i] = id.getAsLong();
    }
    return ids;
  }

  /**
   * Two real sentences for MiniLM, padded to one length: "[CLS] hello world [SEP]" and "[CLS] the
   * cat sat on the mat [SEP]".
   */
  public static Map<String, In> miniLmSentences() throws Exception {
    long[] a = miniLmIds(List.of("[CLS]", "hello", "world", "[SEP]"));
    long[] b = miniLmIds(List.of("[CLS]", "the", "cat", "sat", "on", "the", "mat", "[SEP]"));
    int len = b.length;
    long[] ids = new long[2 * len];
    long[] mask = new long[2 * len];
    for (int i = 0; i < len; i++) {
      ids[i] = i < a.length ? a[i] : 0;
      mask[i] = i < a.length ? 1 : 0;
      ids[len + i] = b[i];
      mask[len + i] = 1;
    }
    long[] shape = {2, len};
    Map<String, In> in = new LinkedHashMap<>();
    in.put("input_ids", In.longs(shape, ids));
    in.put("attention_mask", In.longs(shape, mask));
    in.put("token_type_ids", In.longs(shape, new long[2 * len]));
    return in;
  }
}
