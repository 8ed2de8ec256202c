package dev.graft.trainer.train;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.fixtures.PretrainedModels;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.OpCensus;
import dev.graft.ir.analysis.Verifier;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.recipe.Recipe;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The real all-MiniLM-L6-v2 as ONNX Runtime's {@code quantize_dynamic} wrote it (langchain4j's
 * {@code -q} artifact): its int8 linears and uint8 embeddings turned back into float32, checked
 * against the closed form of each weight and against ORT's run of the quantised model.
 */
class Int8DequantizationTest {
  private static Model quantized;
  private static Model dequantized;
  private static Int8Dequantization.Report report;

  @BeforeAll
  static void load() {
    quantized = WorkingModels.load(PretrainedModels.miniLmQuantized());
    dequantized = quantized.copy();
    report = Int8Dequantization.apply(dequantized);
  }

  @Test
  void everyQuantisedLinearAndEmbeddingBecomesFloat() {
    assertThat(report.matMuls()).isEqualTo(36);
    assertThat(report.weights()).isEqualTo(36);
    assertThat(report.gathers()).isEqualTo(3);
    assertThat(report.floatBytes()).isGreaterThan(3 * report.quantizedBytes());
    Map<String, Integer> census = OpCensus.of(dequantized.graph());
    assertThat(census).doesNotContainKeys("MatMulInteger", "DynamicQuantizeLinear", "DequantizeLinear");
    assertThat(census.get("MatMul")).isEqualTo(OpCensus.of(quantized.graph()).getOrDefault("MatMul", 0) + 36);
    assertThat(Verifier.problems(dequantized)).isEmpty();
    for (Value v : dequantized.graph().initializers()) assertThat(v.hasUses()).as(v.name()).isTrue();
  }

  @Test
  void eachWeightIsItsInt8ValuesTimesItsScale() {
    // The closed form, element by element: W[k][n] = (Wq[k][n] - Wz[n]) * Ws[n].
    Node mmi = quantized.graph().nodes().stream().filter(n -> n.is("MatMulInteger")).findFirst().orElseThrow();
    Tensor wq = mmi.input(1).initializer().orElseThrow();
    Tensor wz = mmi.input(3).initializer().orElseThrow();
    Node scales = mmi.output().uses().get(0).node().output().uses().get(0).node().input(1).producer().orElseThrow();
    Value wsValue = scales.input(0).isInitializer() ? scales.input(0) : scales.input(1);
    float[] ws = wsValue.initializer().orElseThrow().toFloatArray();
    double[] q = wq.toDoubleArray();
    double[] z = wz.toDoubleArray();
    int n = (int) wq.dims()[1];
    // The float weight now sits where the quantised one was read: the MatMul in its place.
    String out = mmi.output().uses().get(0).node().output().uses().get(0).node().output().name();
    Node mm = dequantized.graph().lookup(out).orElseThrow().producer().orElseThrow();
    assertThat(mm.opType()).isEqualTo("MatMul");
    float[] w = mm.input(1).initializer().orElseThrow().toFloatArray();
    assertThat(w).hasSize(q.length);
    for (int i = 0; i < q.length; i++) {
      float want = (float) ((q[i] - (z.length == 1 ? z[0] : z[i % n])) * (ws.length == 1 ? ws[0] : ws[i % n]));
      if (Math.abs(w[i] - want) > 1e-7f * Math.max(1f, Math.abs(want))) {
        throw new AssertionError("weight element " + i + ": " + w[i] + " != " + want);
      }
    }
  }

  @Test
  void theFloatModelComputesWhatTheInt8ModelApproximates() throws Exception {
    Map<String, Tensor> feeds = batch();
    float[] q = OrtRun.run(quantized, feeds).get("last_hidden_state").toFloatArray();
    float[] f = OrtRun.run(dequantized, feeds).get("last_hidden_state").toFloatArray();
    // Only the activations' 8-bit rounding differs: every token's vector points the same way.
    int hidden = 384;
    for (int t = 0; t < q.length / hidden; t++) {
      double dot = 0, nq = 0, nf = 0;
      for (int i = 0; i < hidden; i++) {
        dot += (double) q[t * hidden + i] * f[t * hidden + i];
        nq += (double) q[t * hidden + i] * q[t * hidden + i];
        nf += (double) f[t * hidden + i] * f[t * hidden + i];
      }
      assertThat(dot / Math.sqrt(nq * nf)).as("token %d", t).isGreaterThan(0.97);
    }
  }

  @Test
  void loraFindsTheLinearsOfTheDequantisedModel() {
    Model m = dequantized.copy();
    Recipe.parse(
            """
            passes:
              - {method: lora, targets: ["layer.*.attention.query", "layer.*.attention.value"], rank: 8, alpha: 16}
            """,
            "lora.yaml")
        .manager()
        .run(m);
    assertThat(dev.graft.rewrite.TrainableRegistry.parameterCount(m)).isEqualTo(12L * 2 * 8 * 384);
  }

  @Test
  void aFloatModelIsLeftAsItWas() {
    Model m = WorkingModels.load(PretrainedModels.miniLm());
    byte[] before = ModelIO.toBytes(m);
    Int8Dequantization.Report r = Int8Dequantization.apply(m);
    assertThat(r.any()).isFalse();
    assertThat(ModelIO.toBytes(m)).isEqualTo(before);
  }

  private static Map<String, Tensor> batch() {
    int rows = 2;
    int seq = 12;
    Random rnd = new Random(5);
    long[] ids = new long[rows * seq];
    for (int i = 0; i < ids.length; i++) ids[i] = i % seq == 0 ? 101 : i % seq == seq - 1 ? 102 : 1000 + rnd.nextInt(20000);
    long[] ones = new long[rows * seq];
    java.util.Arrays.fill(ones, 1);
    long[] dims = {rows, seq};
    Map<String, Tensor> f = new HashMap<>();
    f.put("input_ids", DenseTensor.ofLongs("input_ids", dims, ids));
    f.put("attention_mask", DenseTensor.ofLongs("attention_mask", dims, ones));
    f.put("token_type_ids", DenseTensor.ofLongs("token_type_ids", dims, new long[rows * seq]));
    return f;
  }
}
