package dev.graft.tools.cli;

import static org.assertj.core.api.Assertions.assertThat;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.graft.fixtures.PretrainedModels;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.io.proto.Onnx.ModelProto;
import dev.graft.ir.io.proto.Onnx.TensorProto;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code graft convert}: what it writes is the same model, checked on the protobuf (read with the
 * generated classes) and by running the original and the converted file in ONNX Runtime.
 */
class ConvertCommandTest {
  private static Path miniLm;
  private static ModelProto original;

  @BeforeAll
  static void load() throws Exception {
    miniLm = PretrainedModels.miniLm();
    original = ModelProto.parseFrom(Files.readAllBytes(miniLm));
  }

  @Test
  void inlineRoundTripWritesTheSameProto(@TempDir Path dir) throws Exception {
    Path out = dir.resolve("copy.onnx");

    CliRun run = CliRun.of("convert", miniLm.toString(), out.toString(), "--inline");

    assertThat(run.err()).isEmpty();
    assertThat(run.exit()).isZero();
    assertThat(run.out()).startsWith("Wrote " + out);
    assertThat(ModelProto.parseFrom(Files.readAllBytes(out))).isEqualTo(original);
    assertThat(Files.exists(dir.resolve("copy.onnx.data"))).isFalse();
  }

  @Test
  void externalDataRoundTripRunsTheSameInOrtAndComesBackWhole(@TempDir Path dir)
      throws Exception {
    Path split = dir.resolve("split.onnx");
    Path data = dir.resolve("split.onnx.data");

    CliRun toExternal = CliRun.of("convert", miniLm.toString(), split.toString(), "--external-data");

    assertThat(toExternal.err()).isEmpty();
    assertThat(toExternal.exit()).isZero();
    ModelProto splitProto = ModelProto.parseFrom(Files.readAllBytes(split));
    long bigTensors = 0;
    long bigBytes = 0;
    for (TensorProto t : original.getGraph().getInitializerList()) {
      long bytes = t.getRawData().size();
      if (bytes >= 1024) {
        bigTensors++;
        bigBytes += bytes;
      }
    }
    long external =
        splitProto.getGraph().getInitializerList().stream()
            .filter(t -> t.getDataLocation() == TensorProto.DataLocation.EXTERNAL)
            .count();
    assertThat(external).isEqualTo(bigTensors).isPositive();
    assertThat(Files.size(data)).isGreaterThanOrEqualTo(bigBytes);
    assertThat(Files.size(split)).isLessThan(Files.size(miniLm) / 20);

    // inspect reads the data file where the model says it is.
    Map<?, ?> summary = (Map<?, ?>) MiniJson.parse(CliRun.of("inspect", split.toString(), "--json").out());
    List<?> files = (List<?>) summary.get("externalData");
    assertThat(files).hasSize(1);
    assertThat(((Map<?, ?>) files.get(0)).get("location")).isEqualTo("split.onnx.data");
    assertThat(((Map<?, ?>) files.get(0)).get("tensors")).isEqualTo(bigTensors);

    // ONNX Runtime, reading the external data itself, computes what it computes on the original.
    assertThat(runMiniLm(split)).isEqualTo(runMiniLm(miniLm));

    // And back to one file: the original proto again.
    Path whole = dir.resolve("whole.onnx");
    CliRun toInline = CliRun.of("convert", split.toString(), whole.toString(), "--inline");
    assertThat(toInline.exit()).isZero();
    assertThat(ModelProto.parseFrom(Files.readAllBytes(whole))).isEqualTo(original);
  }

  @Test
  void thresholdZeroMovesEveryTensorAndKeepCopiesExternalData(@TempDir Path dir)
      throws Exception {
    Path tiny = TinyProtoModels.write(TinyProtoModels.inline(), dir.resolve("tiny.onnx"));
    Path split = dir.resolve("split.onnx");

    CliRun run =
        CliRun.of("convert", tiny.toString(), split.toString(), "--external-data", "--threshold", "0");

    assertThat(run.exit()).isZero();
    TensorProto w = ModelProto.parseFrom(Files.readAllBytes(split)).getGraph().getInitializer(0);
    assertThat(w.getDataLocation()).isEqualTo(TensorProto.DataLocation.EXTERNAL);
    assertThat(Files.readAllBytes(dir.resolve("split.onnx.data")))
        .isEqualTo(TinyProtoModels.weightBytes());

    // Default layout keeps W external, copying its data next to the output in another folder.
    Path other = Files.createDirectory(dir.resolve("other")).resolve("kept.onnx");
    CliRun keep = CliRun.of("convert", split.toString(), other.toString());
    assertThat(keep.exit()).isZero();
    TensorProto kept = ModelProto.parseFrom(Files.readAllBytes(other)).getGraph().getInitializer(0);
    assertThat(kept.getDataLocation()).isEqualTo(TensorProto.DataLocation.EXTERNAL);
    assertThat(runTiny(other)).isEqualTo(runTiny(tiny));
  }

  @Test
  void staticShapeFixesTheDimsFoldsTheShapeChainsAndOpenCvRunsTheResult(@TempDir Path dir) {
    Path out = dir.resolve("static.onnx");

    CliRun run =
        CliRun.of("convert", miniLm.toString(), out.toString(), "--static-shape", "batch_size=2,sequence_length=16");

    assertThat(run.exit()).as(run.out() + run.err()).isZero();
    assertThat(run.out()).contains("(0 Shape left)");
    dev.graft.ir.Model m = ModelIO.load(out);
    assertThat(m.graph().inputs()).allSatisfy(v -> assertThat(v.shape().orElseThrow().toString()).isEqualTo("[2,16]"));
    assertThat(m.graph().nodes()).noneMatch(n -> n.opType().equals("Shape"));
    // The same outputs as the dynamic model (in ORT Java), and OpenCV's importer, which refuses
    // the dynamic model (Shape of a dynamic input, then the position ids' Slice), runs it.
    CliRun check =
        CliRun.of("check", out.toString(), "--reference", miniLm.toString(), "--runtime", "opencv,ort-java",
            "--warmup", "0", "--runs", "1");
    assertThat(check.exit()).as(check.out() + check.err()).isZero();
    assertThat(check.out()).contains("opencv (opencv-dnn 4.9.0): max |diff| ");

    CliRun unknown = CliRun.of("convert", miniLm.toString(), out.toString(), "--static-shape", "batch=1");
    assertThat(unknown.exit()).isEqualTo(1);
    assertThat(unknown.err()).contains("no dim named 'batch'; their symbolic dims are [batch_size, sequence_length]");
  }

  @Test
  void convertingInPlaceKeepsTheModel(@TempDir Path dir) throws Exception {
    Path tiny = TinyProtoModels.write(TinyProtoModels.inline(), dir.resolve("tiny.onnx"));
    float[][] before = runTiny(tiny);

    CliRun run = CliRun.of("convert", tiny.toString(), tiny.toString(), "--external-data",
        "--threshold", "0");

    assertThat(run.exit()).isZero();
    assertThat(runTiny(tiny)).isEqualTo(before);
  }

  @Test
  void opsetUpgradeKeepsMiniLmsOutputsAndReportsTheRewrites(@TempDir Path dir) throws Exception {
    Path out = dir.resolve("minilm17.onnx");

    CliRun run = CliRun.of("convert", miniLm.toString(), out.toString(), "--opset", "17");

    assertThat(run.err()).isEmpty();
    assertThat(run.exit()).isZero();
    assertThat(run.out()).contains("opset 11 -> 17").contains("51 x Unsqueeze");
    ModelProto upgraded = ModelProto.parseFrom(Files.readAllBytes(out));
    assertThat(upgraded.getOpsetImportList())
        .anyMatch(o -> o.getDomain().isEmpty() && o.getVersion() == 17);
    float[][][] before = runMiniLm(miniLm);
    float[][][] after = runMiniLm(out);
    double max = 0;
    for (int b = 0; b < before.length; b++)
      for (int t = 0; t < before[b].length; t++)
        for (int h = 0; h < before[b][t].length; h++)
          max = Math.max(max, Math.abs(before[b][t][h] - after[b][t][h]));
    assertThat(max).isLessThanOrEqualTo(1e-5);
  }

  @Test
  void aDowngradeOutOfRangeIsOneClearLine(@TempDir Path dir) {
    Path out = dir.resolve("x.onnx");
    CliRun up = CliRun.of("convert", miniLm.toString(), out.toString(), "--opset", "18");
    assertThat(up.exit()).isZero();
    CliRun down = CliRun.of("convert", out.toString(), dir.resolve("y.onnx").toString(), "--opset", "10");
    assertThat(down.exit()).isEqualTo(1);
    assertThat(down.err().strip().lines()).hasSize(1);
    assertThat(down.err()).contains("10").contains("opset 11 or newer");
    assertThat(Files.exists(dir.resolve("y.onnx"))).isFalse();
  }

  @Test
  void upgradedToEighteenThenDowngradedToElevenComputesTheSame(@TempDir Path dir) throws Exception {
    Path up = dir.resolve("up.onnx");
    Path down = dir.resolve("down.onnx");
    assertThat(CliRun.of("convert", miniLm.toString(), up.toString(), "--opset", "18").exit()).isZero();
    CliRun run = CliRun.of("convert", up.toString(), down.toString(), "--opset", "11");
    assertThat(run.exit()).as(run.err()).isZero();
    assertThat(run.out()).contains("opset 18 -> 11").contains("axes input -> attribute");
    assertThat(ModelIO.load(down).defaultOpset().getAsLong()).isEqualTo(11);
    float[][][] before = runMiniLm(miniLm);
    float[][][] after = runMiniLm(down);
    double max = 0;
    for (int b = 0; b < before.length; b++)
      for (int t = 0; t < before[b].length; t++)
        for (int h = 0; h < before[b][t].length; h++)
          max = Math.max(max, Math.abs(before[b][t][h] - after[b][t][h]));
    assertThat(max).isLessThanOrEqualTo(1e-5);
  }

  private static float[][][] runMiniLm(Path model) throws OrtException {
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    long[][] ids = {{101, 7592, 1010, 2088, 999, 102}};
    long[][] mask = {{1, 1, 1, 1, 1, 1}};
    long[][] types = {{0, 0, 0, 0, 0, 0}};
    try (OrtSession s = env.createSession(model.toString(), new OrtSession.SessionOptions());
        OnnxTensor a = OnnxTensor.createTensor(env, ids);
        OnnxTensor b = OnnxTensor.createTensor(env, mask);
        OnnxTensor c = OnnxTensor.createTensor(env, types);
        OrtSession.Result r =
            s.run(Map.of("input_ids", a, "attention_mask", b, "token_type_ids", c))) {
      return (float[][][]) r.get(0).getValue();
    }
  }

  private static float[][] runTiny(Path model) throws OrtException {
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    float[][] x = {{1, 2, 3, 4}, {-1, 0.5f, 0, 2}};
    try (OrtSession s = env.createSession(model.toString(), new OrtSession.SessionOptions());
        OnnxTensor t = OnnxTensor.createTensor(env, x);
        OrtSession.Result r = s.run(Map.of("X", t))) {
      return (float[][]) r.get(0).getValue();
    }
  }
}
