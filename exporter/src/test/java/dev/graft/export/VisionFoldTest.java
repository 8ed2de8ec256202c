package dev.graft.export;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.common.collect.ImmutableMap;
import dev.graft.fixtures.PretrainedCnn;
import dev.graft.ir.DataType;
import dev.graft.ir.Dim;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Shape;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.OpCensus;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.GraphPass;
import dev.graft.rewrite.PassManager;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.fixtures.VisionTransformer;
import dev.graft.rewrite.peft.BatchNormAffinePass;
import dev.graft.rewrite.peft.BottleneckAdapter;
import dev.graft.rewrite.peft.HoulsbyAdapterPass;
import dev.graft.rewrite.peft.LayerNormAffinePass;
import dev.graft.rewrite.peft.UTuningPass;
import dev.graft.rewrite.peft.ConvLoraPass;
import dev.graft.rewrite.peft.LoraPass;
import dev.graft.rewrite.peft.TaylorChannelPass;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Conv-LoRA and BatchNorm-affine on the real PaddleOCR MobileNetV3 (weights in Constant nodes),
 * and the identity-initialised methods on a ViT in PyTorch's export form: identity at
 * initialisation on ONNX Runtime, and after "training" (random deltas) the merged export
 * reproduces the tuned graph with the base model's op census.
 */
class VisionFoldTest {
  private static byte[] cnn;
  private static Path cnnPath;
  @TempDir Path dir;

  @BeforeAll
  static void load() throws IOException {
    cnnPath = PretrainedCnn.mobileNetV3();
    cnn = Files.readAllBytes(cnnPath);
  }

  /** The classifier with a fixed input size, batch × 3 × 48 × 96, and its pooled features as an output. */
  static Model cnn() {
    Model m = WorkingModels.of(ModelIO.fromBytes(cnn, cnnPath.getParent()));
    Value x = m.graph().inputs().get(0);
    x.setType(Type.tensor(DataType.FLOAT, Shape.of(Dim.of("batch"), Dim.of(3), Dim.of(48), Dim.of(96))));
    // The pooled features too, which a softmax over two classes would hide.
    m.graph().addOutput(m.graph().lookup("pool2d_10.tmp_0").orElseThrow());
    return m;
  }

  @Test
  void convLoraOnPointwiseAndFullConvsStartsAtIdentityAndFoldsToTheBaseCensus() {
    Model base = cnn();
    Model tuned = cnn();
    PassResult r = apply(tuned, new ConvLoraPass(Targets.glob("{stem.conv,stage.*.block.*.conv.pw,last.conv}"),
        LoraPass.Config.defaults().withRank(4)));
    // stem (3x3, stride 2), 11 projections, the last 1x1: 13 ungrouped convs.
    assertThat(r.changes().size()).isEqualTo(13);
    assertThat(maxDiff(base, tuned)).isLessThanOrEqualTo(1e-5);

    randomise(tuned, 3);
    assertThat(maxDiff(base, tuned)).isGreaterThan(1e-3);
    ExportReport e = MergedExport.write(tuned, dir.resolve("m.onnx"), ExportOptions.defaults());
    Model merged = ModelIO.load(dir.resolve("m.onnx"));
    assertThat(e.verification().maxAbsDiff()).isLessThanOrEqualTo(1e-4);
    assertThat(OpCensus.of(merged.graph())).isEqualTo(OpCensus.of(base.graph()));
    assertThat(e.fold().folded()).filteredOn(s -> s.startsWith("conv-lora ")).hasSize(13);
    assertThat(TrainableRegistry.read(merged)).isEmpty();
  }

  @Test
  void depthwiseConvsAreNotLoraTargets() {
    Model m = cnn();
    assertThat(new ConvLoraPass(Targets.glob("stage.*.block.*.conv.*"), LoraPass.Config.defaults()).dryRun(m).changes())
        .allMatch(c -> !c.endsWith(".dw"));
  }

  @Test
  void batchNormAffineStartsAtIdentityAndFoldsIntoTheConstantNodes() {
    Model base = cnn();
    Model tuned = cnn();
    PassResult r = apply(tuned, new BatchNormAffinePass(Targets.all()));
    assertThat(r.changes().size()).isEqualTo(35);
    assertThat(maxDiff(base, tuned)).isLessThanOrEqualTo(1e-5);

    randomise(tuned, 4);
    assertThat(maxDiff(base, tuned)).isGreaterThan(1e-3);
    ExportReport e = MergedExport.write(tuned, dir.resolve("bn.onnx"), ExportOptions.defaults());
    Model merged = ModelIO.load(dir.resolve("bn.onnx"));
    assertThat(e.verification().maxAbsDiff()).isLessThanOrEqualTo(1e-4);
    assertThat(OpCensus.of(merged.graph())).isEqualTo(OpCensus.of(base.graph()));
    assertThat(merged.graph().initializers()).isEmpty();
  }

  @Test
  void taylorChannelsOnThePointwiseConvsStartAtIdentityAndFoldToTheBaseCensus() {
    Model base = cnn();
    Model tuned = cnn();
    // Channels 0, 2 and 5 of every pointwise projection (each has at least 8 outputs), the last
    // ones first: the scatter must put each delta row at its own channel.
    List<String> pws =
        new ConvLoraPass(Targets.glob("stage.*.block.*.conv.pw"), LoraPass.Config.defaults()).dryRun(base).changes()
            .stream().map(c -> c.substring(c.lastIndexOf(' ') + 1)).toList();
    assertThat(pws).hasSize(11);
    ImmutableMap.Builder<String, List<Integer>> channels = ImmutableMap.builder();
    for (String m : pws) channels.put(m, List.of(5, 0, 2));
    PassResult r = apply(tuned, new TaylorChannelPass(TaylorChannelPass.Config.of(channels.buildOrThrow())));
    assertThat(r.changes()).hasSize(11);
    assertThat(maxDiff(base, tuned)).isLessThanOrEqualTo(1e-5);

    randomise(tuned, 5);
    assertThat(maxDiff(base, tuned)).isGreaterThan(1e-3);
    ExportReport e = MergedExport.write(tuned, dir.resolve("taylor.onnx"), ExportOptions.defaults());
    Model merged = ModelIO.load(dir.resolve("taylor.onnx"));
    assertThat(e.verification().maxAbsDiff()).isLessThanOrEqualTo(1e-4);
    assertThat(OpCensus.of(merged.graph())).isEqualTo(OpCensus.of(base.graph()));
    assertThat(e.fold().folded()).filteredOn(s -> s.startsWith("taylor-channels ")).hasSize(11);
    assertThat(TrainableRegistry.read(merged)).isEmpty();
    assertThat(merged.graph().initializers()).isEmpty();
  }

  @Test
  void taylorChannelsRefuseADepthwiseConvInOneLine() {
    Model m = cnn();
    org.assertj.core.api.Assertions.assertThatThrownBy(
            () -> apply(m, new TaylorChannelPass(TaylorChannelPass.Config.of(ImmutableMap.of("stage.0.block.0.conv.dw", List.of(0))))))
        .hasMessageContaining("no linear or ungrouped conv module is named 'stage.0.block.0.conv.dw'");
  }

  /** The ViT fixture (PyTorch's opset-17 export form, 2 blocks), fused or decomposed LayerNorm. */
  static Model vit(boolean decomposed) {
    return VisionTransformer.build(VisionTransformer.Config.tiny().withLayers(2).withDecomposedLayerNorm(decomposed), 3);
  }

  @Test
  void onTheVitEveryIdentityInitialisedPassLeavesTheOutputsUnchanged() {
    Model base = vit(false);
    List<GraphPass> passes =
        List.of(
            new LoraPass(Targets.glob("layer.*.attention.{query,key,value,output}"), LoraPass.Config.defaults()),
            new LoraPass(Targets.glob("layer.*.ffn.{up,down}"), LoraPass.Config.defaults().withRank(4)),
            new ConvLoraPass(Targets.glob("embeddings.patch"), LoraPass.Config.defaults().withRank(2)),
            new LayerNormAffinePass(Targets.all()),
            new HoulsbyAdapterPass(Targets.glob("layer.*.{attention,ffn}"), BottleneckAdapter.Config.defaults().withSize(8)),
            new UTuningPass(
                Targets.glob("layer.*.ffn"),
                UTuningPass.Config.bottleneck(UTuningPass.Op.FFN, BottleneckAdapter.Form.PARALLEL, BottleneckAdapter.Config.defaults().withSize(8))));
    Model all = vit(false);
    for (GraphPass pass : passes) {
      Model one = vit(false);
      assertThat(apply(one, pass).changed()).as(pass.name()).isTrue();
      assertThat(maxDiff(base, one)).as(pass.name()).isLessThanOrEqualTo(1e-5);
      apply(all, pass);
    }
    assertThat(maxDiff(base, all)).isLessThanOrEqualTo(1e-5);
    // The check can fail: random deltas move the outputs.
    randomise(all, 6);
    assertThat(maxDiff(base, all)).isGreaterThan(1e-3);
  }

  @Test
  void onTheVitLoraConvLoraAndLayerNormAffineFoldToTheBaseCensus() {
    for (boolean decomposed : new boolean[] {false, true}) {
      Model base = vit(decomposed);
      Model tuned = vit(decomposed);
      apply(tuned, new LoraPass(Targets.glob("layer.*.{attention.{query,key,value,output},ffn.{up,down}}"), LoraPass.Config.defaults()));
      apply(tuned, new ConvLoraPass(Targets.glob("embeddings.patch"), LoraPass.Config.defaults().withRank(2)));
      PassResult ln = apply(tuned, new LayerNormAffinePass(Targets.all()));
      // 2 norms per block and the final one.
      assertThat(ln.changes().size()).as("decomposed %s", decomposed).isEqualTo(5);
      assertThat(maxDiff(base, tuned)).isLessThanOrEqualTo(1e-5);
      randomise(tuned, 5);
      assertThat(maxDiff(base, tuned)).isGreaterThan(1e-3);
      Path out = dir.resolve("vit-" + decomposed + ".onnx");
      ExportReport e = MergedExport.write(tuned, out, ExportOptions.defaults());
      assertThat(e.verification().maxAbsDiff()).as("decomposed %s", decomposed).isLessThanOrEqualTo(1e-4);
      Model merged = ModelIO.load(out);
      assertThat(OpCensus.of(merged.graph())).isEqualTo(OpCensus.of(base.graph()));
      assertThat(TrainableRegistry.read(merged)).isEmpty();
    }
  }

  static PassResult apply(Model m, GraphPass pass) {
    return new PassManager(List.of(pass)).run(m).get(0);
  }

  /** Random deltas standing in for training: B ~ N(0, 0.05²), norm deltas ~ N(0, 0.1²). */
  static void randomise(Model m, long seed) {
    SplittableRandom r = new SplittableRandom(seed);
    Graph g = m.graph();
    for (TrainableRegistry.Entry e : TrainableRegistry.read(m)) {
      if (e.role().equals("A")) continue;
      Value v = g.initializer(e.initializer()).orElseThrow();
      Tensor t = v.initializer().orElseThrow();
      float[] data = new float[Math.toIntExact(t.numElements())];
      double std = e.role().equals("B") ? 0.05 : 0.1;
      for (int i = 0; i < data.length; i++) data[i] = (float) (r.nextGaussian() * std);
      g.setInitializer(v, DenseTensor.ofFloats(v.name(), t.dims(), data));
    }
  }

  static double maxDiff(Model a, Model b) {
    ImmutableMap<String, Tensor> feeds = ExportVerifier.heldOutInputs(a, 11);
    return ExportVerifier.compare(a, b, feeds, 1e9).maxAbsDiff();
  }
}
