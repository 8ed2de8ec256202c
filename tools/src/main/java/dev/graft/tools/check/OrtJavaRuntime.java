package dev.graft.tools.check;

import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtLoraAdapter;
import ai.onnxruntime.OrtSession;
import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMap;
import dev.graft.ir.DataType;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * ONNX Runtime's Java build, the one Graft trains and verifies with: the reference every other
 * runtime is compared against. The session opens from the file, so external data is read by ORT.
 * Adapters are served by ORT's own LoRA adapter API: {@code OrtLoraAdapter.create(file)} and
 * {@code RunOptions.addActiveLoraAdapter}, one session for all of them.
 */
public final class OrtJavaRuntime implements TargetRuntime {
  private static final OrtEnvironment ENV = OrtEnvironment.getEnvironment();

  @Override
  public String name() {
    return "ort-java";
  }

  @Override
  public Run run(Path model, Map<String, Tensor> feeds, RunSettings settings) throws Refusal {
    return runEach(model, feeds, java.util.Collections.singletonList(null), settings).get(0);
  }

  @Override
  public ImmutableList<Run> runAdapters(Path model, Map<String, Tensor> feeds, List<Path> adapters, RunSettings settings)
      throws Refusal {
    return runEach(model, feeds, adapters, settings);
  }

  /** One session; per entry of {@code adapters} (null: none active) warm-up and timed runs. */
  private static ImmutableList<Run> runEach(Path model, Map<String, Tensor> feeds, List<Path> adapters, RunSettings settings)
      throws Refusal {
    try (OrtSession.SessionOptions o = new OrtSession.SessionOptions()) {
      o.setIntraOpNumThreads(settings.threads());
      o.setInterOpNumThreads(1);
      OrtSession s;
      try {
        s = ENV.createSession(model.toString(), o);
      } catch (OrtException e) {
        throw new Refusal("load", null, e.getMessage());
      }
      List<OrtLoraAdapter> loaded = new ArrayList<>();
      Map<String, OnnxTensor> in = new LinkedHashMap<>();
      try (s) {
        for (Path a : adapters) {
          try {
            loaded.add(a == null ? null : OrtLoraAdapter.create(a.toString()));
          } catch (OrtException e) {
            throw new Refusal("load", null, "adapter " + a + ": " + e.getMessage());
          }
        }
        for (Map.Entry<String, Tensor> e : feeds.entrySet()) in.put(e.getKey(), toOrt(e.getValue()));
        ImmutableList.Builder<Run> runs = ImmutableList.builder();
        for (OrtLoraAdapter adapter : loaded) {
          try (OrtSession.RunOptions ro = new OrtSession.RunOptions()) {
            if (adapter != null) ro.addActiveLoraAdapter(adapter);
            for (int i = 0; i < settings.warmup(); i++) s.run(in, ro).close();
            ImmutableList.Builder<Double> ms = ImmutableList.builder();
            ImmutableMap<String, Tensor> outputs = null;
            for (int i = 0; i < settings.runs(); i++) {
              long t0 = System.nanoTime();
              try (OrtSession.Result r = s.run(in, ro)) {
                ms.add((System.nanoTime() - t0) / 1e6);
                if (i == settings.runs() - 1) outputs = outputs(r);
              }
            }
            String engine = "onnxruntime-java " + ENV.getVersion();
            runs.add(new Run(adapter == null ? engine : engine + ", adapter via OrtLoraAdapter", outputs, ms.build()));
          }
        }
        return runs.build();
      } catch (OrtException e) {
        throw new Refusal("run", null, e.getMessage());
      } finally {
        in.values().forEach(OnnxTensor::close);
        for (OrtLoraAdapter a : loaded) if (a != null) a.close();
      }
    } catch (OrtException e) {
      throw new Refusal("load", null, e.getMessage());
    }
  }

  private static ImmutableMap<String, Tensor> outputs(OrtSession.Result r) {
    ImmutableMap.Builder<String, Tensor> out = ImmutableMap.builder();
    for (Map.Entry<String, OnnxValue> e : r) {
      if (!(e.getValue() instanceof OnnxTensor t)) {
        throw new IllegalArgumentException("Output '" + e.getKey() + "' is not a tensor; graft check compares tensors only");
      }
      DataType type =
          DataType.valueOf(t.getInfo().onnxType.name().substring("ONNX_TENSOR_ELEMENT_DATA_TYPE_".length()));
      ByteBuffer b = t.getByteBuffer();
      ByteBuffer copy = ByteBuffer.allocate(b.remaining()).order(ByteOrder.LITTLE_ENDIAN);
      copy.put(b.order(ByteOrder.nativeOrder())).flip();
      out.put(e.getKey(), DenseTensor.ofRaw(e.getKey(), type, t.getInfo().getShape(), copy));
    }
    return out.build();
  }

  private static OnnxTensor toOrt(Tensor t) throws OrtException {
    ByteBuffer raw = t.rawData().duplicate().order(ByteOrder.LITTLE_ENDIAN);
    ByteBuffer direct = ByteBuffer.allocateDirect(raw.remaining()).order(ByteOrder.nativeOrder());
    direct.put(raw).flip();
    OnnxJavaType type =
        switch (t.dataType()) {
          case FLOAT -> OnnxJavaType.FLOAT;
          case DOUBLE -> OnnxJavaType.DOUBLE;
          case INT64 -> OnnxJavaType.INT64;
          case INT32 -> OnnxJavaType.INT32;
          case INT8 -> OnnxJavaType.INT8;
          case UINT8 -> OnnxJavaType.UINT8;
          case BOOL -> OnnxJavaType.BOOL;
          default -> throw new IllegalArgumentException(
              "Input '" + t.name() + "' is " + t.dataType() + "; graft check feeds float, double, int8/32/64, uint8 and bool");
        };
    return OnnxTensor.createTensor(ENV, direct, t.dims(), type);
  }
}
