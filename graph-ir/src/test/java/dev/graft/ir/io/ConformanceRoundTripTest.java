package dev.graft.ir.io;

import static org.assertj.core.api.Assertions.assertThat;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtLoggingLevel;
import ai.onnxruntime.OrtSession;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.Verifier;
import dev.graft.ir.io.proto.Onnx;
import dev.graft.ir.tensor.Tensor;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The ONNX conformance corpus (Debian's libonnx-testdata) as a lossless round-trip proof: for
 * every model, load then save gives an equal proto, inline and with external data, and ORT runs
 * the saved model and reproduces the corpus's reference outputs. Models the corpus or ORT cannot
 * run are counted and listed with the reason, never silently passed.
 */
class ConformanceRoundTripTest {
  static final Path CORPUS = Path.of("/usr/share/libonnx-testdata/data");

  @TempDir Path tmp;

  @Test
  void everyCorpusModelRoundTripsAndReproducesItsReferenceOutputs() throws Exception {
    assertThat(CORPUS)
        .as("The conformance corpus is missing: install it with 'apt-get install libonnx-testdata'"
            + " (.ci/run does this)")
        .isDirectory();
    List<Path> models;
    try (Stream<Path> s = Files.walk(CORPUS)) {
      models = s.filter(p -> p.getFileName().toString().equals("model.onnx")).sorted().toList();
    }
    assertThat(models).hasSizeGreaterThan(900);

    OrtEnvironment env = OrtEnvironment.getEnvironment(OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL);
    int roundTripped = 0;
    int ortVerified = 0;
    Map<String, List<String>> skipped = new TreeMap<>();
    List<String> failures = new ArrayList<>();
    int i = 0;
    for (Path file : models) {
      String id = CORPUS.relativize(file.getParent()).toString();
      byte[] original = Files.readAllBytes(file);
      Onnx.ModelProto expected = Onnx.ModelProto.parseFrom(original);
      Model model;
      try {
        model = ModelIO.load(file);
      } catch (RuntimeException e) {
        failures.add(id + ": load failed: " + e.getMessage());
        continue;
      }
      List<String> problems = Verifier.problems(model);
      if (!problems.isEmpty()) {
        failures.add(id + ": the loaded IR breaks an invariant: " + problems.get(0));
        continue;
      }
      // Inline: load, save, load gives the same proto.
      Path inline = tmp.resolve("m" + i + ".onnx");
      ModelIO.save(model, inline);
      byte[] saved = Files.readAllBytes(inline);
      if (!Onnx.ModelProto.parseFrom(saved).equals(expected)) {
        failures.add(id + ": inline round trip changed the proto");
        continue;
      }
      // External data: save twice through external data; the two loads agree exactly, and the
      // data they hold equals the original's.
      Path d1 = Files.createDirectories(tmp.resolve("x" + i + "a"));
      Path d2 = Files.createDirectories(tmp.resolve("x" + i + "b"));
      ModelIO.save(model, d1.resolve("model.onnx"), SaveOptions.external(0).withDataFileName("w.bin"));
      Model ext = ModelIO.load(d1.resolve("model.onnx"));
      ModelIO.save(ext, d2.resolve("model.onnx"), SaveOptions.external(0).withDataFileName("w.bin"));
      Onnx.ModelProto e1 = Onnx.ModelProto.parseFrom(Files.readAllBytes(d1.resolve("model.onnx")));
      Onnx.ModelProto e2 = Onnx.ModelProto.parseFrom(Files.readAllBytes(d2.resolve("model.onnx")));
      if (!e1.equals(e2)) {
        failures.add(id + ": external-data round trip changed the proto");
        continue;
      }
      roundTripped++;

      String why = ortCheck(env, file.getParent(), original, ModelIO.toBytes(ext), failures, id);
      if (why == null) {
        ortVerified++;
      } else {
        skipped.computeIfAbsent(why, k -> new ArrayList<>()).add(id);
      }
      i++;
    }
    System.out.printf(
        "Conformance corpus: %d models, %d round-tripped losslessly (inline and external),"
            + " %d reproduced their reference outputs in ORT after the round trip.%n",
        models.size(), roundTripped, ortVerified);
    skipped.forEach(
        (why, ids) ->
            System.out.printf("  not run in ORT (%d): %s, e.g. %s%n", ids.size(), why, ids.subList(0, Math.min(3, ids.size()))));
    assertThat(failures).as("round-trip failures").isEmpty();
    assertThat(roundTripped).isEqualTo(models.size());
    assertThat(ortVerified).isGreaterThan(700);
  }

  /**
   * Runs the original and the round-tripped model on the reference inputs. Returns null when the
   * round-tripped model reproduced the reference outputs, a reason when the check could not run
   * for a cause outside Graft (ORT cannot load or run the original, or disagrees with the
   * reference on it); adds to {@code failures} when the round trip broke the outputs.
   */
  private static String ortCheck(
      OrtEnvironment env, Path dir, byte[] original, byte[] roundTripped, List<String> failures, String id)
      throws IOException {
    Path data = dir.resolve("test_data_set_0");
    if (!Files.isDirectory(data)) return "no reference data";
    OrtSession.SessionOptions opts = new OrtSession.SessionOptions();
    try (opts) {
      opts.setIntraOpNumThreads(1);
      opts.setSessionLogLevel(OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL);
      opts.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.NO_OPT);
      OrtSession orig;
      try {
        orig = env.createSession(original, opts);
      } catch (OrtException e) {
        return "ORT cannot load the original model";
      }
      try (orig) {
        Map<String, OnnxTensor> inputs = new LinkedHashMap<>();
        List<String> inputNames = new ArrayList<>(orig.getInputNames());
        Model m = ModelIO.fromBytes(original, dir);
        List<String> graphInputs =
            m.graph().inputs().stream().filter(v -> !v.isInitializer()).map(Value::name).toList();
        try {
          for (int k = 0; ; k++) {
            Path p = data.resolve("input_" + k + ".pb");
            if (!Files.exists(p)) break;
            Tensor t = readTensor(p, dir);
            if (t == null || k >= graphInputs.size()) return "reference input is not a plain tensor";
            OnnxTensor ot = OrtValues.toOrt(env, t);
            if (ot == null) return "reference input type " + t.dataType() + " not mapped";
            inputs.put(graphInputs.get(k), ot);
          }
          if (!inputNames.containsAll(inputs.keySet())) return "input names differ";
          List<double[]> reference = new ArrayList<>();
          for (int k = 0; ; k++) {
            Path p = data.resolve("output_" + k + ".pb");
            if (!Files.exists(p)) break;
            Tensor t = readTensor(p, dir);
            double[] d = t == null ? null : OrtValues.toDoubles(t);
            if (d == null) return "reference output is not a numeric tensor";
            reference.add(d);
          }
          List<double[]> before;
          try (OrtSession.Result r = orig.run(inputs)) {
            before = doubles(r);
          } catch (OrtException e) {
            return "ORT cannot run the original model";
          }
          if (before == null || !close(before, reference)) {
            return "ORT disagrees with the reference on the original model";
          }
          try (OrtSession rt = env.createSession(roundTripped, opts);
              OrtSession.Result r = rt.run(inputs)) {
            List<double[]> after = doubles(r);
            if (after == null || !close(after, reference)) {
              failures.add(id + ": the round-tripped model's outputs differ from the reference");
            }
          } catch (OrtException e) {
            failures.add(id + ": ORT rejects the round-tripped model: " + e.getMessage());
          }
          return null;
        } finally {
          inputs.values().forEach(OnnxTensor::close);
        }
      }
    } catch (OrtException e) {
      return "ORT error: " + e.getCode();
    }
  }

  private static List<double[]> doubles(OrtSession.Result r) throws OrtException {
    List<double[]> out = new ArrayList<>();
    for (Map.Entry<String, OnnxValue> e : r) {
      double[] d = OrtValues.toDoubles(e.getValue());
      if (d == null) return null;
      out.add(d);
    }
    return out;
  }

  /** numpy.testing.assert_allclose(rtol=1e-3, atol=1e-5), NaN equal to NaN, as the ONNX backend tests. */
  private static boolean close(List<double[]> actual, List<double[]> expected) {
    if (actual.size() != expected.size()) return false;
    for (int k = 0; k < actual.size(); k++) {
      double[] a = actual.get(k);
      double[] e = expected.get(k);
      if (a.length != e.length) return false;
      for (int j = 0; j < a.length; j++) {
        if (Double.isNaN(a[j]) && Double.isNaN(e[j])) continue;
        if (a[j] == e[j]) continue;
        if (!(Math.abs(a[j] - e[j]) <= 1e-5 + 1e-3 * Math.abs(e[j]))) return false;
      }
    }
    return true;
  }

  private static Tensor readTensor(Path pb, Path dir) throws IOException {
    try (InputStream in = Files.newInputStream(pb)) {
      Onnx.TensorProto tp = Onnx.TensorProto.parseFrom(in);
      if (!tp.hasDataType() || tp.getDataType() == 0) return null;
      Tensor t = new ModelReader(dir, pb.toString()).tensor(tp);
      if (t.dataType() != dev.graft.ir.DataType.STRING) t.rawData();
      return t;
    } catch (com.google.protobuf.InvalidProtocolBufferException | RuntimeException e) {
      // A SequenceProto or OptionalProto reference file also parses as a (garbage) TensorProto.
      return null;
    }
  }
}
