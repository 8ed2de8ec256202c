package dev.graft.export;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.io.SafeTensors;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.discover.LinearModule;
import dev.graft.rewrite.discover.ModuleDiscovery;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * LoRA adapters in PEFT's files: Graft's written and read back give the tuned model, and an
 * adapter written by this test in PEFT's documented layout (developer_guides/checkpoint.md:
 * {@code base_model.model.<module>.lora_A.weight [r, in]}, {@code lora_B.weight [out, r]},
 * ΔW = scaling · B·A in nn.Linear's [out, in]) reads into the model that oracle describes.
 */
class PeftAdapterFilesTest {
  private static TunedMiniLm miniLm;
  @TempDir Path dir;

  @BeforeAll
  static void load() {
    miniLm = new TunedMiniLm();
  }

  @Test
  void graftLoraWrittenInPeftLayoutReadsBackToTheTunedModel() throws Exception {
    Model tuned = miniLm.loraOnly(31);
    PeftAdapterFiles.PeftReport r = PeftAdapterFiles.write(tuned, dir);
    assertThat(r.keys()).hasSize(24).contains("base_model.model.encoder.layer.0.attention.self.query.lora_A.weight");
    assertThat(r.leftOut()).isEmpty();
    SafeTensors.Contents st = SafeTensors.read(dir.resolve(PeftAdapterFiles.SAFETENSORS));
    assertThat(st.tensors().get("base_model.model.encoder.layer.5.attention.self.value.lora_A.weight").dims()).containsExactly(8, 384);
    assertThat(st.tensors().get("base_model.model.encoder.layer.5.attention.self.value.lora_B.weight").dims()).containsExactly(384, 8);
    JsonObject config = JsonParser.parseString(Files.readString(dir.resolve(PeftAdapterFiles.CONFIG))).getAsJsonObject();
    assertThat(config.get("peft_type").getAsString()).isEqualTo("LORA");
    assertThat(config.get("r").getAsInt()).isEqualTo(8);
    assertThat(config.get("lora_alpha").getAsDouble()).isEqualTo(16.0);
    assertThat(config.getAsJsonArray("target_modules")).hasSize(12);

    Model read = PeftAdapterFiles.read(miniLm.path, dir);
    Map<String, Tensor> feeds = ExportVerifier.heldOutInputs(tuned, 4);
    assertThat(ExportVerifier.compare(tuned, read, feeds, 1e-5).maxAbsDiff()).isLessThanOrEqualTo(1e-5);
    assertThat(ExportVerifier.compare(miniLm.base(), read, feeds, 1e-4).maxAbsDiff()).isGreaterThan(1e-3);
  }

  /**
   * DoRA in PEFT's layout: lora_A/lora_B as for LoRA, and lora_magnitude_vector m = ‖W‖ + dm
   * (PEFT stores the magnitude, Graft trains dm); written, read back on the base, same outputs.
   */
  @Test
  void graftDoraWrittenInPeftLayoutReadsBackToTheTunedModel() throws Exception {
    Model tuned = miniLm.base();
    dev.graft.rewrite.recipe.Recipe.parse("passes: [{method: dora, targets: \"layer.*.attention.{query,value}\"}]", "dora.yaml")
        .manager().run(tuned);
    TunedMiniLm.randomise(tuned, 37);
    PeftAdapterFiles.PeftReport r = PeftAdapterFiles.write(tuned, dir);
    String q0 = "base_model.model.encoder.layer.0.attention.self.query.";
    assertThat(r.keys()).hasSize(36).contains(q0 + "lora_A.weight", q0 + "lora_B.weight", q0 + "lora_magnitude_vector");
    JsonObject config = JsonParser.parseString(Files.readString(dir.resolve(PeftAdapterFiles.CONFIG))).getAsJsonObject();
    assertThat(config.get("use_dora").getAsBoolean()).isTrue();
    assertThat(config.get("peft_type").getAsString()).isEqualTo("LORA");

    // m = ‖W‖ + dm, per output feature: the norm over the input axis of W [in, out], in double here.
    SafeTensors.Contents st = SafeTensors.read(dir.resolve(PeftAdapterFiles.SAFETENSORS));
    float[] m = st.tensors().get(q0 + "lora_magnitude_vector").toFloatArray();
    assertThat(st.tensors().get(q0 + "lora_magnitude_vector").dims()).containsExactly(384);
    dev.graft.rewrite.discover.LinearModule q = (dev.graft.rewrite.discover.LinearModule)
        dev.graft.rewrite.discover.ModuleDiscovery.discover(miniLm.base()).stream()
            .filter(x -> x.name().equals("layer.0.attention.query")).findFirst().orElseThrow();
    float[] w = q.weight().initializer().orElseThrow().toFloatArray();
    float[] dm = tuned.graph().initializer("layer.0.attention.query.dora_dm").orElseThrow().initializer().orElseThrow().toFloatArray();
    for (int j = 0; j < 384; j++) {
      double sq = 0;
      for (int i = 0; i < 384; i++) sq += (double) w[i * 384 + j] * w[i * 384 + j];
      assertThat((double) m[j]).isCloseTo(Math.sqrt(sq) + dm[j], org.assertj.core.data.Offset.offset(1e-5));
    }

    Model read = PeftAdapterFiles.read(miniLm.path, dir);
    Map<String, Tensor> feeds = ExportVerifier.heldOutInputs(tuned, 4);
    assertThat(ExportVerifier.compare(tuned, read, feeds, 1e-5).maxAbsDiff()).isLessThanOrEqualTo(1e-5);
    assertThat(ExportVerifier.compare(miniLm.base(), read, feeds, 1e-4).maxAbsDiff()).isGreaterThan(1e-3);
  }

  @Test
  void anAdapterInPeftsDocumentedLayoutAppliesAsItsFormulaSays() throws Exception {
    int r = 4;
    double alpha = 8;
    SplittableRandom random = new SplittableRandom(3);
    Map<String, Tensor> tensors = new LinkedHashMap<>();
    for (String module : new String[] {"query", "value"}) {
      String key = "base_model.model.encoder.layer.1.attention.self." + module;
      tensors.put(key + ".lora_A.weight", gaussian(key + ".lora_A.weight", random, r, 384));
      tensors.put(key + ".lora_B.weight", gaussian(key + ".lora_B.weight", random, 384, r));
    }
    SafeTensors.write(dir.resolve("adapter_model.safetensors"), tensors, Map.of("format", "pt"));
    Files.writeString(
        dir.resolve("adapter_config.json"),
        "{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"query\", \"value\"],"
            + " \"task_type\": null, \"bias\": \"none\", \"fan_in_fan_out\": false}");

    Model read = PeftAdapterFiles.read(miniLm.path, dir);

    // The oracle: the base with W_onnx + (alpha/r) · (B·A)ᵀ in the query and value weights of layer 1.
    Model oracle = miniLm.base();
    for (String module : new String[] {"query", "value"}) {
      LinearModule l =
          (LinearModule)
              ModuleDiscovery.discover(oracle).stream().filter(m -> m.name().equals("layer.1.attention." + module)).findFirst().orElseThrow();
      String key = "base_model.model.encoder.layer.1.attention.self." + module;
      GraphBuilder b = GraphBuilder.create("delta");
      Value w = b.initializer("W", l.weight().initializer().orElseThrow());
      Value ba = b.op("MatMul", b.initializer("B", tensors.get(key + ".lora_B.weight")), b.initializer("A", tensors.get(key + ".lora_A.weight")));
      b.output("merged", b.op("Add", w, b.op("Mul", b.op("Transpose", ba), b.scalar((float) (alpha / r)))));
      b.typed(b.graph().outputs().get(0), dev.graft.ir.DataType.FLOAT, 384, 384);
      Tensor merged = OrtEval.run(b.model(17), Map.of()).get("merged");
      oracle.graph().setInitializer(l.weight(), merged.withName(l.weight().name()));
    }
    Map<String, Tensor> feeds = ExportVerifier.heldOutInputs(oracle, 6);
    assertThat(ExportVerifier.compare(oracle, read, feeds, 1e-4).maxAbsDiff()).isLessThanOrEqualTo(1e-4);
    assertThat(ExportVerifier.compare(miniLm.base(), read, feeds, 1e-4).maxAbsDiff()).isGreaterThan(1e-3);

    Files.writeString(dir.resolve("adapter_config.json"), "{\"peft_type\": \"IA3\"}");
    assertThatThrownBy(() -> PeftAdapterFiles.read(miniLm.path, dir)).hasMessageContaining("peft_type is 'IA3'");
  }

  private static Tensor gaussian(String name, SplittableRandom random, long rows, long cols) {
    float[] x = new float[Math.toIntExact(rows * cols)];
    for (int i = 0; i < x.length; i++) x[i] = (float) (random.nextGaussian() * 0.05);
    return DenseTensor.ofFloats(name, new long[] {rows, cols}, x);
  }
}
