package dev.graft.tools.check;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMap;
import dev.graft.ir.io.AtomicFiles;
import dev.graft.ir.Model;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.io.SaveOptions;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.opencv.core.Core;
import org.opencv.core.CvType;
import org.opencv.core.Mat;
import org.opencv.dnn.Dnn;
import org.opencv.dnn.Net;

/**
 * OpenCV's DNN module ({@code org.openpnp:opencv} from Maven Central: the Java API with native
 * libraries for Linux, macOS and Windows), an inference engine of another vendor with its own ONNX
 * importer and kernels.
 *
 * <p>OpenCV's importer needs a static graph: it refuses a {@code Shape} of a dynamic input, and
 * with fixed dims it still refuses the {@code Slice} of BERT's position-id buffer. So the model
 * runs from a temporary copy whose inputs declare the dims of the feeds, as a deployment to OpenCV
 * would fix them, with its shape computations folded into constants by ONNX Runtime ({@link
 * StaticShapes}). OpenCV 4.x computes in fp32 and takes float inputs only: integer feeds (token
 * ids, masks) go in as floats, exact below 2^24.
 */
public final class OpenCvRuntime implements TargetRuntime {
  private static boolean loaded;

  @Override
  public String name() {
    return "opencv";
  }

  @Override
  public Run run(Path model, Map<String, Tensor> feeds, RunSettings settings) throws Refusal {
    loadNatives();
    Path dir = null;
    try {
      dir = Files.createTempDirectory("graft-opencv");
      Path fixed = dir.resolve("fixed-shapes.onnx");
      Model m = ModelIO.load(model);
      for (Value in : m.graph().inputs()) {
        Tensor feed = feeds.get(in.name());
        if (feed != null && !in.isInitializer()) in.setType(Type.tensor(feed.dataType(), feed.dims()));
      }
      ModelIO.save(m, fixed, SaveOptions.inline());
      Path folded = dir.resolve("folded.onnx");
      StaticShapes.fold(fixed, folded);
      Net net;
      try {
        net = Dnn.readNetFromONNX(folded.toString());
      } catch (RuntimeException e) {
        throw refusal("load", e);
      }
      try {
        Core.setNumThreads(settings.threads());
        List<String> outNames = new ArrayList<>();
        for (Value v : m.graph().outputs()) outNames.add(v.name());
        List<Mat> outs = new ArrayList<>();
        for (int i = 0; i < settings.warmup(); i++) {
          forward(net, feeds, outs, outNames);
        }
        ImmutableList.Builder<Double> ms = ImmutableList.builder();
        for (int i = 0; i < settings.runs(); i++) {
          long t0 = System.nanoTime();
          forward(net, feeds, outs, outNames);
          ms.add((System.nanoTime() - t0) / 1e6);
        }
        ImmutableMap.Builder<String, Tensor> outputs = ImmutableMap.builder();
        for (int i = 0; i < outNames.size(); i++) outputs.put(outNames.get(i), tensor(outNames.get(i), outs.get(i)));
        return new Run("opencv-dnn " + Core.VERSION, outputs.build(), ms.build());
      } catch (RuntimeException e) {
        throw refusal("run", e);
      }
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot write a fixed-shape copy of " + model + " for OpenCV", e);
    } finally {
      AtomicFiles.deleteTreeQuietly(dir);
    }
  }

  private static void forward(Net net, Map<String, Tensor> feeds, List<Mat> outs, List<String> outNames) {
    for (Map.Entry<String, Tensor> e : feeds.entrySet()) net.setInput(mat(e.getValue()), e.getKey());
    outs.clear();
    net.forward(outs, outNames);
  }

  private static Mat mat(Tensor t) {
    long[] dims = t.dims();
    int[] sizes = new int[Math.max(1, dims.length)];
    if (dims.length == 0) sizes[0] = 1;
    for (int i = 0; i < dims.length; i++) sizes[i] = Math.toIntExact(dims[i]);
    Mat m = new Mat(sizes, CvType.CV_32F);
    float[] values;
    if (t.dataType() == dev.graft.ir.DataType.FLOAT) {
      values = t.toFloatArray();
    } else {
      double[] d = t.toDoubleArray(); // token ids and masks: exact as floats below 2^24
      values = new float[d.length];
      for (int i = 0; i < d.length; i++) values[i] = (float) d[i];
    }
    m.put(new int[sizes.length], values);
    return m;
  }

  private static DenseTensor tensor(String name, Mat m) {
    int rank = m.dims();
    long[] dims = new long[rank];
    for (int i = 0; i < rank; i++) dims[i] = m.size(i);
    float[] data = new float[Math.toIntExact(m.total())];
    Mat f = m;
    if (m.type() != CvType.CV_32F) {
      f = new Mat();
      m.convertTo(f, CvType.CV_32F);
    }
    f.get(new int[rank], data);
    return DenseTensor.ofFloats(name, dims, data);
  }

  private static Refusal refusal(String stage, RuntimeException e) {
    String message = e.getMessage() == null ? e.toString() : e.getMessage();
    return new Refusal(stage, RefusalHints.opIn(message), message);
  }

  private static synchronized void loadNatives() throws Refusal {
    if (loaded) return;
    try {
      nu.pattern.OpenCV.loadLocally();
      loaded = true;
    } catch (Throwable t) {
      throw new Refusal("install", null, "cannot load OpenCV's native library for this platform: " + t.getMessage());
    }
  }
}
