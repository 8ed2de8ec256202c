package dev.graft.ir.convert;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import com.google.protobuf.ByteString;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.io.proto.Onnx;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * The ONNX conformance corpus (libonnx-testdata) as a free test bed: every model at a default
 * opset from 11 to 16 whose ops the pass knows is upgraded to the working opset, and ONNX
 * Runtime must still reproduce the reference outputs stored beside it. Models ORT cannot run (or
 * does not reproduce) at their original opset say nothing about the pass and are counted apart.
 */
class ConformanceCorpusUpgradeTest {
  private static final Path CORPUS = Path.of("/usr/share/libonnx-testdata/data");

  @Test
  void upgradedToTheWorkingOpsetTheyReproduceTheirReferenceOutputs() throws Exception {
    runCorpus(11, 16, OpsetUpgrade.WORKING_OPSET, 600);
  }

  /** The same up to the newest opset ORT loads, from every older opset the rules start at. */
  @Test
  void upgradedToTheNewestOpsetTheyReproduceTheirReferenceOutputs() throws Exception {
    runCorpus(11, OpsetUpgrade.NEWEST_OPSET - 1, OpsetUpgrade.NEWEST_OPSET, 600);
  }

  private static void runCorpus(long minOpset, long maxOpset, long target, int minPassing) throws Exception {
    assumeTrue(Files.isDirectory(CORPUS), "conformance corpus not installed at " + CORPUS);
    List<Path> dirs;
    try (Stream<Path> s = Files.list(CORPUS)) {
      dirs = s.filter(Files::isDirectory).flatMap(ConformanceCorpusUpgradeTest::children).sorted().toList();
    }
    Map<String, Integer> counts = new TreeMap<>();
    Map<String, Integer> unknownOps = new TreeMap<>();
    Map<String, Integer> rewrites = new TreeMap<>();
    List<String> failures = new ArrayList<>();
    for (Path dir : dirs) {
      Path modelFile = dir.resolve("model.onnx");
      Path data = dir.resolve("test_data_set_0");
      if (!Files.isRegularFile(modelFile) || !Files.isDirectory(data)) continue;
      Model m;
      try {
        m = ModelIO.load(modelFile);
      } catch (RuntimeException e) {
        bump(counts, "skipped: the IR cannot load it");
        continue;
      }
      long opset = m.defaultOpset().orElse(-1);
      if (opset < minOpset || opset > maxOpset) {
        bump(counts, "not in opset " + minOpset + ".." + maxOpset);
        continue;
      }
      List<String> unknown = unknownOps(m);
      if (!unknown.isEmpty()) {
        unknown.forEach(op -> bump(unknownOps, op));
        bump(counts, "skipped: an op the pass does not know");
        continue;
      }
      byte[] original = ModelIO.toBytes(m);
      Map<String, OnnxTensor> inputs;
      List<Onnx.TensorProto> expected;
      try {
        inputs = readInputs(m, data);
        expected = readAll(data, "output_");
      } catch (IOException | RuntimeException | OrtException e) {
        bump(counts, "skipped: test data are not plain tensors");
        continue;
      }
      try {
        String originalProblem = check(original, m, inputs, expected);
        if (originalProblem != null) {
          bump(counts, "skipped: ORT cannot run or reproduce the original");
          continue;
        }
        try {
          OpsetUpgrade.upgrade(m, target).counts().forEach(c -> bump(rewrites, c));
        } catch (OpsetUpgradeException e) {
          bump(counts, "refused by a rule");
          continue;
        }
        String problem = check(ModelIO.toBytes(m), m, inputs, expected);
        if (problem == null) {
          bump(counts, "upgraded and passing");
        } else {
          failures.add(CORPUS.relativize(dir) + " (opset " + opset + "): " + problem);
          bump(counts, "upgraded and FAILING");
        }
      } finally {
        OrtRunner.close(inputs);
      }
    }
    System.out.println("Conformance corpus, opset " + minOpset + ".." + maxOpset + " -> " + target + ": " + counts);
    System.out.println("  unknown ops (models skipped per op): " + unknownOps);
    System.out.println("  rewrites made: " + rewrites);
    failures.forEach(f -> System.out.println("  FAIL " + f));
    assertThat(failures).isEmpty();
    assertThat(counts.getOrDefault("upgraded and passing", 0)).isGreaterThanOrEqualTo(minPassing);
  }

  private static Stream<Path> children(Path p) {
    try {
      return Files.list(p).filter(Files::isDirectory).toList().stream();
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  private static List<String> unknownOps(Model m) {
    List<String> out = new ArrayList<>();
    List<Graph> graphs = new ArrayList<>();
    graphs.add(m.graph());
    m.functions().forEach(f -> graphs.add(f.body()));
    for (Graph g : graphs) {
      for (Node n : g.allNodes()) {
        if (n.domain().isEmpty() && UpgradeRules.forOp(n.opType()).isEmpty()) out.add(n.opType());
      }
    }
    return out;
  }

  /** Null when ORT runs the model and matches the reference outputs, else what went wrong. */
  private static String check(byte[] model, Model m, Map<String, OnnxTensor> in, List<Onnx.TensorProto> expected) {
    Map<String, OrtRunner.Out> out;
    try {
      out = OrtRunner.run(model, in);
    } catch (OrtException | RuntimeException e) {
      return "ORT: " + e.getMessage().lines().findFirst().orElse("");
    }
    List<Value> outputs = m.graph().outputs();
    if (expected.size() != outputs.size()) return expected.size() + " reference outputs for " + outputs.size();
    for (int i = 0; i < outputs.size(); i++) {
      OrtRunner.Out got = out.get(outputs.get(i).name());
      if (got == null) return "no tensor output '" + outputs.get(i).name() + "'";
      OrtRunner.Out want;
      try (OnnxTensor t = toOrt(expected.get(i))) {
        want = OrtRunner.toOut(t);
      } catch (OrtException | RuntimeException e) {
        return "reference output " + i + " unreadable: " + e.getMessage();
      }
      if (!java.util.Arrays.equals(got.dims(), want.dims())) {
        return "output " + i + " shape " + java.util.Arrays.toString(got.dims()) + " vs reference "
            + java.util.Arrays.toString(want.dims());
      }
      for (int k = 0; k < want.values().length; k++) {
        double a = got.values()[k];
        double b = want.values()[k];
        if (Double.isNaN(a) && Double.isNaN(b)) continue;
        if (!(Math.abs(a - b) <= 1e-4 + 1e-3 * Math.abs(b))) {
          return "output " + i + " element " + k + ": " + a + " vs reference " + b;
        }
      }
    }
    return null;
  }

  private static Map<String, OnnxTensor> readInputs(Model m, Path data) throws IOException, OrtException {
    List<Onnx.TensorProto> protos = readAll(data, "input_");
    List<String> names = new ArrayList<>();
    for (Value v : m.graph().inputs()) if (!v.isInitializer()) names.add(v.name());
    Map<String, OnnxTensor> in = new LinkedHashMap<>();
    try {
      for (int i = 0; i < protos.size(); i++) {
        Onnx.TensorProto p = protos.get(i);
        String name = p.getName().isEmpty() || !names.contains(p.getName()) ? names.get(i) : p.getName();
        in.put(name, toOrt(p));
      }
    } catch (RuntimeException | OrtException e) {
      OrtRunner.close(in);
      throw e;
    }
    return in;
  }

  private static List<Onnx.TensorProto> readAll(Path data, String prefix) throws IOException {
    List<Onnx.TensorProto> out = new ArrayList<>();
    for (int i = 0; ; i++) {
      Path p = data.resolve(prefix + i + ".pb");
      if (!Files.isRegularFile(p)) return out;
      Onnx.TensorProto t = Onnx.TensorProto.parseFrom(Files.readAllBytes(p));
      if (t.getDataType() == 0) throw new IllegalArgumentException(p + " is not a TensorProto");
      out.add(t);
    }
  }

  /** A TensorProto as an ORT tensor, from raw_data or the typed lists. */
  static OnnxTensor toOrt(Onnx.TensorProto t) throws OrtException {
    long[] dims = t.getDimsList().stream().mapToLong(Long::longValue).toArray();
    int n = (int) java.util.Arrays.stream(dims).reduce(1L, Math::multiplyExact);
    OnnxJavaType type;
    int width;
    switch (t.getDataType()) {
      case 1 -> { type = OnnxJavaType.FLOAT; width = 4; }
      case 2 -> { type = OnnxJavaType.UINT8; width = 1; }
      case 3 -> { type = OnnxJavaType.INT8; width = 1; }
      case 5 -> { type = OnnxJavaType.INT16; width = 2; }
      case 6 -> { type = OnnxJavaType.INT32; width = 4; }
      case 7 -> { type = OnnxJavaType.INT64; width = 8; }
      case 9 -> { type = OnnxJavaType.BOOL; width = 1; }
      case 10 -> { type = OnnxJavaType.FLOAT16; width = 2; }
      case 11 -> { type = OnnxJavaType.DOUBLE; width = 8; }
      default -> throw new IllegalArgumentException("tensor type " + t.getDataType() + " not supported here");
    }
    ByteBuffer b = ByteBuffer.allocateDirect(n * width).order(ByteOrder.nativeOrder());
    if (t.hasRawData() || !t.getRawData().isEmpty()) {
      ByteString raw = t.getRawData();
      if (raw.size() != n * width) throw new IllegalArgumentException("raw size mismatch");
      ByteBuffer src = raw.asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
      for (int i = 0; i < n; i++) {
        switch (width) {
          case 1 -> b.put(src.get(i));
          case 2 -> b.putShort(src.getShort(i * 2));
          case 4 -> b.putInt(src.getInt(i * 4));
          default -> b.putLong(src.getLong(i * 8));
        }
      }
    } else {
      for (int i = 0; i < n; i++) {
        switch (t.getDataType()) {
          case 1 -> b.putFloat(t.getFloatData(i));
          case 11 -> b.putDouble(t.getDoubleData(i));
          case 7 -> b.putLong(t.getInt64Data(i));
          case 6 -> b.putInt(t.getInt32Data(i));
          case 5, 10 -> b.putShort((short) t.getInt32Data(i));
          default -> b.put((byte) t.getInt32Data(i));
        }
      }
    }
    b.flip();
    return OnnxTensor.createTensor(OrtRunner.ENV, b, dims, type);
  }

  private static void bump(Map<String, Integer> m, String k) {
    m.merge(k, 1, Integer::sum);
  }
}
