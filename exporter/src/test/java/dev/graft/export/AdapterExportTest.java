package dev.graft.export;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.onnxruntime.OrtLoraAdapter;
import ai.onnxruntime.OrtSession;
import com.google.common.hash.Hashing;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.ir.Model;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.io.SafeTensors;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.TrainableRegistry;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class AdapterExportTest {
  private static TunedMiniLm miniLm;
  @TempDir Path dir;

  @BeforeAll
  static void load() {
    miniLm = new TunedMiniLm();
  }

  @Test
  void adapterRoundTripRebuildsTheTunedModelOnTheBase() throws Exception {
    Model tuned = miniLm.tuned(11);
    tuned.putMetadata(AdapterExport.LABELS_KEY, "{\"negative\":0,\"positive\":1}");
    Path out = dir.resolve("adapter");

    AdapterExport.AdapterReport r = AdapterExport.write(tuned, miniLm.path, out);

    assertThat(r.files()).containsExactlyInAnyOrder(
        AdapterExport.SAFETENSORS, AdapterExport.CONFIG, AdapterExport.ORT_ADAPTER, AdapterExport.BASE_WITH_INPUTS);
    assertThat(r.parameters()).isEqualTo(TrainableRegistry.parameterCount(tuned));
    assertThat(r.applied().maxAbsDiff()).isLessThanOrEqualTo(1e-4);
    assertThat(r.ortAdapter().maxAbsDiff()).isLessThanOrEqualTo(1e-4);

    JsonObject config = JsonParser.parseString(Files.readString(out.resolve(AdapterExport.CONFIG))).getAsJsonObject();
    String sha = Hashing.sha256().hashBytes(Files.readAllBytes(miniLm.path)).toString();
    assertThat(config.get("base_model_sha256").getAsString()).isEqualTo(sha);
    assertThat(config.get("methods").toString()).isEqualTo("[\"lora\",\"layernorm-affine\",\"head\"]");
    assertThat(config.get("rank").getAsInt()).isEqualTo(8);
    assertThat(config.get("alpha").getAsDouble()).isEqualTo(16.0);
    assertThat(config.getAsJsonObject("targets").getAsJsonArray("lora")).hasSize(12);
    assertThat(config.getAsJsonObject("labels").get("positive").getAsInt()).isEqualTo(1);

    // The safetensors hold exactly the trainables, with the tuned values.
    SafeTensors.Contents st = SafeTensors.read(out.resolve(AdapterExport.SAFETENSORS));
    assertThat(st.tensors().keySet())
        .containsExactlyInAnyOrderElementsOf(
            TrainableRegistry.read(tuned).stream().map(TrainableRegistry.Entry::initializer).toList());
    String b0 = "layer.0.attention.query.lora_B";
    assertThat(st.tensors().get(b0).toFloatArray())
        .containsExactly(tuned.graph().initializer(b0).orElseThrow().initializer().orElseThrow().toFloatArray());

    // Applied to the base, the adapter gives the tuned model's outputs (an ORT oracle).
    Model applied = AdapterExport.apply(miniLm.path, out);
    Map<String, Tensor> feeds = ExportVerifier.heldOutInputs(tuned, 5);
    assertThat(ExportVerifier.compare(tuned, applied, feeds, 1e-4).maxAbsDiff()).isLessThanOrEqualTo(1e-4);
    assertThat(ExportVerifier.compare(miniLm.baseWithHead(), applied, feeds, 1e-4).maxAbsDiff()).isGreaterThan(1e-2);
    assertThat(applied.metadata()).containsEntry(AdapterExport.LABELS_KEY, "{\"negative\":0,\"positive\":1}");
  }

  @Test
  void aDifferentBaseIsRefused() throws Exception {
    Path out = dir.resolve("adapter");
    AdapterExport.write(miniLm.loraOnly(12), miniLm.path, out);
    Model other = miniLm.base();
    other.setProducerName("someone-else");
    Path otherPath = dir.resolve("other.onnx");
    ModelIO.save(other, otherPath);

    assertThatThrownBy(() -> AdapterExport.apply(otherPath, out))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("SHA-256")
        .hasMessageContaining(AdapterExport.sha256(miniLm.path))
        .hasMessageContaining("apply it to that model");
  }

  @Test
  void oneSessionServesTwoAdaptersEachReproducingItsOwnTunedModel() throws Exception {
    Model first = miniLm.loraOnly(21);
    Model second = miniLm.loraOnly(22);
    Path d1 = dir.resolve("first");
    Path d2 = dir.resolve("second");
    AdapterExport.write(first, miniLm.path, d1);
    AdapterExport.write(second, miniLm.path, d2);
    // Same base, same recipe: one serving graph fits both.
    assertThat(Files.readAllBytes(d1.resolve(AdapterExport.BASE_WITH_INPUTS)))
        .isEqualTo(Files.readAllBytes(d2.resolve(AdapterExport.BASE_WITH_INPUTS)));

    Map<String, Tensor> feeds = ExportVerifier.heldOutInputs(first, 8);
    Map<String, Tensor> want1 = OrtEval.run(first, feeds);
    Map<String, Tensor> want2 = OrtEval.run(second, feeds);
    Map<String, Tensor> wantBase = OrtEval.run(miniLm.base(), feeds);
    assertThat(ExportVerifier.compare(want1, want2, 1e-4).maxAbsDiff()).isGreaterThan(1e-2);

    try (OrtSession.SessionOptions o = MultiLora.sessionOptions();
        OrtSession session = OrtEval.ENV.createSession(d1.resolve(AdapterExport.BASE_WITH_INPUTS).toString(), o);
        OrtLoraAdapter a1 = OrtLoraAdapter.create(d1.resolve(AdapterExport.ORT_ADAPTER).toString());
        OrtLoraAdapter a2 = OrtLoraAdapter.create(d2.resolve(AdapterExport.ORT_ADAPTER).toString())) {
      for (int round = 0; round < 2; round++) {
        assertThat(ExportVerifier.compare(want1, MultiLora.run(session, a1, feeds), 1e-4).maxAbsDiff())
            .isLessThanOrEqualTo(1e-4);
        assertThat(ExportVerifier.compare(want2, MultiLora.run(session, a2, feeds), 1e-4).maxAbsDiff())
            .isLessThanOrEqualTo(1e-4);
      }
      // No adapter active: the zero defaults make it the base model.
      assertThat(ExportVerifier.compare(wantBase, MultiLora.run(session, null, feeds), 1e-4).maxAbsDiff())
          .isLessThanOrEqualTo(1e-4);
    }
  }

  @Test
  void aMethodThatCannotBeReplayedIsRefusedBeforeAnythingIsWritten() {
    Model tuned = miniLm.loraOnly(13);
    TrainableRegistry.add(
        tuned, java.util.List.of(new TrainableRegistry.Entry("layer.0.attention.query.lora_A", "prefix", "p", "x")));
    Path out = dir.resolve("adapter");
    assertThatThrownBy(() -> AdapterExport.write(tuned, miniLm.path, out))
        .hasMessageContaining("'prefix'")
        .hasMessageContaining("no record of the pass")
        .hasMessageContaining("--merge");
    assertThat(out).doesNotExist();
  }
}
