package dev.graft.tools.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.export.ExportVerifier;
import dev.graft.ir.DataType;
import dev.graft.ir.Model;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.OpCensus;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.convert.LayerNormFusion;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.peft.ClassificationHeadPass;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code graft export --opset N}: a merged MiniLM tuned at the working opset (17, with fused
 * LayerNormalization, as an opset-17 exporter writes it) written back to opset 13 for older
 * runtimes; ONNX Runtime must compute the same as the opset-17 merge.
 */
class ExportOpsetTest {
  @TempDir Path dir;

  @Test
  void anOpsetThirteenExportOfAMergedMiniLmComputesWhatTheOpsetSeventeenOneDoes() {
    Model m = TrainedMiniLm.base();
    assertThat(LayerNormFusion.fuse(m).fused()).hasSize(13);
    Path tuned =
        TrainedMiniLm.tune(
            m,
            List.of(
                TrainedMiniLm.loraOnQueryValue(),
                new ClassificationHeadPass(ClassificationHeadPass.Config.of(2, ClassificationHeadPass.Pooling.MEAN))),
            3,
            dir.resolve("tuned.onnx"));
    Path merged17 = dir.resolve("merged17.onnx");
    Path merged13 = dir.resolve("merged13.onnx");

    assertThat(CliRun.of("export", tuned.toString(), merged17.toString()).exit()).isZero();
    CliRun run = CliRun.of("export", tuned.toString(), merged13.toString(), "--opset", "13", "--ir-version", "7");

    assertThat(run.exit()).as(run.err()).isZero();
    assertThat(run.out()).contains("opset 17 -> 13").contains("13 x LayerNormalization: decomposed");
    assertThat(run.out()).contains("Wrote " + merged13 + " (opset 13, IR 7)");
    Model m13 = ModelIO.load(merged13);
    assertThat(m13.defaultOpset().getAsLong()).isEqualTo(13);
    assertThat(m13.irVersion()).isEqualTo(7);
    assertThat(OpCensus.of(m13.graph())).doesNotContainKey("LayerNormalization");
    assertThat(OpCensus.of(ModelIO.load(merged17).graph())).containsEntry("LayerNormalization", 13);
    Map<String, Tensor> feeds = ExportVerifier.heldOutInputs(m13, 11);
    assertThat(ExportVerifier.compare(ModelIO.load(merged17), m13, feeds, 1e-5).maxAbsDiff()).isLessThanOrEqualTo(1e-5);
    assertThat(ExportVerifier.compare(ModelIO.load(tuned), m13, feeds, 1e-4).maxAbsDiff()).isLessThanOrEqualTo(1e-4);
  }

  @Test
  void aModelThatCannotGoThatLowNamesTheOpAndNothingIsWritten() throws Exception {
    GraphBuilder b = GraphBuilder.create("masked");
    Value x = b.input("x", DataType.FLOAT, 4, 4);
    Value y = b.op("Relu", b.op("Trilu", x));
    y.setType(Type.tensor(DataType.FLOAT));
    b.output(y);
    Model m = b.model(14);
    m.setIrVersion(8L);
    Path in = dir.resolve("trilu.onnx");
    ModelIO.save(m, in);
    Path out = dir.resolve("trilu13.onnx");

    CliRun run = CliRun.of("convert", in.toString(), out.toString(), "--opset", "13");

    assertThat(run.exit()).isEqualTo(1);
    assertThat(run.err().strip().lines()).hasSize(1);
    assertThat(run.err()).contains("op Trilu (node '").contains("first appeared at opset 14").contains("Keep the model at opset 14");
    assertThat(Files.exists(out)).isFalse();
  }
}
