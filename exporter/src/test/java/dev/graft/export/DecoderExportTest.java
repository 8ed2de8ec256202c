package dev.graft.export;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.onnxruntime.OrtLoraAdapter;
import ai.onnxruntime.OrtSession;
import dev.graft.fixtures.TinyDecoders;
import dev.graft.fixtures.TinyDecoders.Config;
import dev.graft.ir.Model;
import dev.graft.ir.analysis.OpCensus;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.recipe.Recipe;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Exports of LoRA-tuned decoders: merged fp32 and fp16 for the standard form (the base op census,
 * the tuned logits within 1e-4 / 2e-2), and the GenAI multi-LoRA layout (one base graph with LoRA
 * inputs, an .onnx_adapter per tuning) serving two adapters from one session, over fp32 and over
 * 4-bit MatMulNBits weights, whose LoRA stays beside them (unmerged).
 */
class DecoderExportTest {
  private static final Config C = Config.small().withPast(true);
  private static final String LORA = "passes: [{method: lora, targets: ['layer.*.attention.*', 'layer.*.mlp.*'], rank: 4}]";

  @TempDir Path dir;

  static Model tuned(Model base, long seed) {
    Recipe.parse(LORA, "lora.yaml").manager().run(base);
    TunedMiniLm.randomise(base, seed);
    return base;
  }

  @Test
  void mergedExportsOfTheStandardFormMatchTheTunedLogits() {
    Model tuned = tuned(TinyDecoders.standard(C), 3);
    ExportReport fp32 = MergedExport.write(tuned, dir.resolve("merged.onnx"), ExportOptions.defaults().withFeeds(feeds(tuned)));
    assertThat(fp32.verification().maxAbsDiff()).isLessThanOrEqualTo(1e-4);
    Model merged = ModelIO.load(dir.resolve("merged.onnx"));
    assertThat(OpCensus.of(merged.graph())).isEqualTo(OpCensus.of(TinyDecoders.standard(C).graph()));
    assertThat(merged.graph().inputs().stream().map(v -> v.name())).contains("past_key_values.1.value");

    ExportReport fp16 = MergedExport.write(tuned, dir.resolve("merged16.onnx"),
        ExportOptions.defaults().withFp16(true).withFeeds(feeds(tuned)));
    assertThat(fp16.verification().maxAbsDiff()).isLessThanOrEqualTo(2e-2);
    assertThat(fp16.fp16Initializers()).isGreaterThan(0);
  }

  @Test
  void oneGenAiSessionServesTwoDecoderAdaptersOverInt4Weights() throws Exception {
    for (boolean int4 : new boolean[] {true}) { // fp32 GenAI bases take the same path
      Path base = dir.resolve("base" + int4 + ".onnx");
      ModelIO.save(TinyDecoders.genAi(C, int4), base);
      Model first = tuned(ModelIO.load(base), 21);
      Model second = tuned(ModelIO.load(base), 22);
      Path d1 = dir.resolve("first" + int4);
      Path d2 = dir.resolve("second" + int4);
      AdapterExport.write(first, base, d1);
      AdapterExport.write(second, base, d2);
      Map<String, Tensor> feeds = feeds(first);
      Map<String, Tensor> want1 = OrtEval.run(first, feeds);
      Map<String, Tensor> want2 = OrtEval.run(second, feeds);
      assertThat(ExportVerifier.compare(want1, want2, 1e-4).maxAbsDiff()).isGreaterThan(1e-2);
      Model served = ModelIO.load(d1.resolve(AdapterExport.BASE_WITH_INPUTS));
      // The serving graph keeps the deployed form: GQA and, for int4, the 4-bit weights.
      assertThat(OpCensus.of(served.graph())).containsKey("com.microsoft:GroupQueryAttention");
      if (int4) assertThat(OpCensus.of(served.graph())).containsKey("com.microsoft:MatMulNBits");
      try (OrtSession.SessionOptions o = MultiLora.sessionOptions();
          OrtSession session = OrtEval.ENV.createSession(d1.resolve(AdapterExport.BASE_WITH_INPUTS).toString(), o);
          OrtLoraAdapter a1 = OrtLoraAdapter.create(d1.resolve(AdapterExport.ORT_ADAPTER).toString());
          OrtLoraAdapter a2 = OrtLoraAdapter.create(d2.resolve(AdapterExport.ORT_ADAPTER).toString())) {
        for (int round = 0; round < 2; round++) {
          assertThat(ExportVerifier.compare(want1, MultiLora.run(session, a1, feeds), 1e-4).maxAbsDiff()).isLessThanOrEqualTo(1e-4);
          assertThat(ExportVerifier.compare(want2, MultiLora.run(session, a2, feeds), 1e-4).maxAbsDiff()).isLessThanOrEqualTo(1e-4);
        }
      }
    }
  }

  @Test
  void aMergeOntoInt4WeightsIsRefusedInOneLineAndKeepUnmergedKeepsTheLoraBesideThem() {
    Model base = TinyDecoders.genAi(C, true);
    Model tuned = tuned(TinyDecoders.genAi(C, true), 7);
    Map<String, Tensor> feeds = feeds(tuned);
    Path out = dir.resolve("merged.onnx");
    assertThatThrownBy(() -> MergedExport.write(tuned, out, ExportOptions.defaults().withFeeds(feeds)))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageStartingWith("lora module 'layer.0.attention.query' sits on 4-bit weights (MatMulNBits '")
        .hasMessageEndingWith("which a merge cannot change without re-quantising them. Export with --keep-unmerged"
            + " (the lora stays as nodes beside the 4-bit weights) or --adapter-only --base BASE (an .onnx_adapter"
            + " for ONNX Runtime GenAI's multi-LoRA).")
        .satisfies(e -> assertThat(e.getMessage()).doesNotContain("\n"));
    assertThat(out).doesNotExist();

    ExportReport r = MergedExport.write(tuned, out, ExportOptions.defaults().withFeeds(feeds).withKeepUnmerged(true));
    assertThat(r.fold().folded()).isEmpty();
    assertThat(r.fold().kept()).hasSize(C.layers() * 7)
        .contains("lora layer.0.attention.query, unmerged over 4-bit MatMulNBits (4 nodes)");
    // Independent of the export's own check: ORT on the written file against ORT on the tuned
    // model, and the LoRA really matters (the base differs from the tuned model by far more).
    Map<String, Tensor> want = OrtEval.run(tuned, feeds);
    Model written = ModelIO.load(out);
    assertThat(ExportVerifier.compare(want, OrtEval.run(written, feeds), 1e-6).maxAbsDiff()).isLessThanOrEqualTo(1e-6);
    assertThat(ExportVerifier.compare(want, OrtEval.run(base, feeds), 1e-4).maxAbsDiff()).isGreaterThan(1e-2);
    assertThat(OpCensus.of(written.graph()).get("com.microsoft:MatMulNBits"))
        .isEqualTo(OpCensus.of(base.graph()).get("com.microsoft:MatMulNBits"));
  }

  /** A 6-token prompt with an empty cache. */
  static Map<String, Tensor> feeds(Model m) {
    Map<String, Tensor> f = new LinkedHashMap<>();
    f.put("input_ids", DenseTensor.ofLongs("input_ids", new long[] {1, 6}, 3, 141, 59, 26, 5, 35));
    f.put("attention_mask", DenseTensor.ofLongs("attention_mask", new long[] {1, 6}, 1, 1, 1, 1, 1, 1));
    if (m.graph().value("position_ids").isPresent()) {
      f.put("position_ids", DenseTensor.ofLongs("position_ids", new long[] {1, 6}, 0, 1, 2, 3, 4, 5));
    }
    for (int i = 0; i < C.layers(); i++) {
      for (String kv : new String[] {"key", "value"}) {
        String n = "past_key_values." + i + "." + kv;
        f.put(n, DenseTensor.ofFloats(n, new long[] {1, C.kvHeads(), 0, C.headDim()}));
      }
    }
    return f;
  }
}
