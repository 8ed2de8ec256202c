package dev.graft.trainer.task;

import static org.assertj.core.api.Assertions.assertThat;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.graft.fixtures.PretrainedModels;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.Verifier;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.ir.io.ModelIO;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.peft.CodaDistillation;
import dev.graft.rewrite.peft.CodaPass;
import java.nio.LongBuffer;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.fixtures.Datasets;
import dev.graft.rewrite.recipe.Recipe;
import dev.graft.trainer.run.Pipeline;
import dev.graft.trainer.run.RunConfig;
import dev.graft.trainer.run.RunListener;
import dev.graft.trainer.run.RunResult;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The distillation graph: its teacher computes what the unmodified model computes (ORT on the
 * base model is the oracle), the residual is student minus teacher with padding zeroed, autodiff
 * reaches the routers and adapters, and strip gives back the CoDA model.
 */
class CodaDistillationTest {
  private static final OrtEnvironment ENV = OrtEnvironment.getEnvironment();
  private static final long[] SHAPE = {2, 6};
  private static final long[] IDS = {101, 7592, 2088, 102, 0, 0, 101, 1996, 4937, 2938, 2006, 102};
  private static final long[] MASK = {1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1};

  private static Map<String, float[]> run(Model m, Set<String> outs) throws Exception {
    try (OrtSession s = ENV.createSession(ModelIO.toBytes(m), new OrtSession.SessionOptions());
        OnnxTensor ids = OnnxTensor.createTensor(ENV, LongBuffer.wrap(IDS), SHAPE);
        OnnxTensor mask = OnnxTensor.createTensor(ENV, LongBuffer.wrap(MASK), SHAPE);
        OnnxTensor types = OnnxTensor.createTensor(ENV, LongBuffer.wrap(new long[12]), SHAPE);
        OrtSession.Result r = s.run(Map.of("input_ids", ids, "attention_mask", mask, "token_type_ids", types), outs)) {
      Map<String, float[]> out = new HashMap<>();
      for (String o : outs) {
        OnnxTensor t = (OnnxTensor) r.get(o).orElseThrow();
        float[] f = new float[(int) t.getInfo().getNumElements()];
        t.getFloatBuffer().get(f);
        out.put(o, f);
      }
      return out;
    }
  }

  @Test
  void teacherIsTheDenseModelAndTheResidualIsStudentMinusTeacher() throws Exception {
    Model base = WorkingModels.load(PretrainedModels.miniLm());
    float[] dense = run(base, Set.of("last_hidden_state")).get("last_hidden_state");
    Model coda = WorkingModels.load(PretrainedModels.miniLm());
    new CodaPass(Targets.all(), CodaPass.Config.defaults().withFraction(0.5).withMinTokens(1)).run(coda);
    float[] student = run(coda, Set.of("last_hidden_state")).get("last_hidden_state");
    int nodes = coda.graph().nodeCount();

    Model distill = coda.copy();
    CodaDistillation.addResidual(distill, "last_hidden_state", "attention_mask");
    Verifier.verify(distill);
    float[] residual = run(distill, Set.of(CodaDistillation.RESIDUAL)).get(CodaDistillation.RESIDUAL);
    double worst = 0;
    double moved = 0;
    for (int i = 0; i < residual.length; i++) {
      float expected = MASK[i / 384] == 0 ? 0f : student[i] - dense[i];
      worst = Math.max(worst, Math.abs(residual[i] - expected));
      moved = Math.max(moved, Math.abs(expected));
      if (MASK[i / 384] == 0) assertThat(residual[i]).isZero();
    }
    assertThat(worst).as("residual vs (CoDA - base) on ORT").isLessThanOrEqualTo(1e-4);
    assertThat(moved).as("CoDA at init is not the base, so there is something to distil").isGreaterThan(1e-2);

    // The teacher reads no trainable: autodiff reaches the CoDA parameters through the student only.
    List<Value> trainables =
        TrainableRegistry.read(distill).stream().map(e -> distill.graph().valueOrThrow(e.initializer())).toList();
    assertThat(trainables).hasSize(30);

    CodaDistillation.strip(distill);
    Verifier.verify(distill);
    assertThat(distill.graph().nodeCount()).isEqualTo(nodes);
    assertThat(distill.graph().outputs().stream().map(Value::name)).doesNotContain(CodaDistillation.RESIDUAL);
  }

  /**
   * The light phase learns: a short distillation (lr 1e-2, the rate docs/coda.md gives) lowers the
   * held-out MSE well below the untouched CoDA model's, measured the same way by the same
   * pipeline at a learning rate of 1e-12 (nothing moves), and every router and adapter parameter moves (each gets
   * gradient). Unlabelled JSONL: texts only, no label column.
   */
  @Test
  void distillationLowersTheHeldOutErrorAndMovesEveryRouterAndAdapter(@TempDir Path dir) throws Exception {
    JsonArray sentences = JsonParser.parseString(Files.readString(Datasets.sentiment("yelp"))).getAsJsonArray();
    StringBuilder train = new StringBuilder();
    StringBuilder test = new StringBuilder();
    for (int i = 0; i < 120; i++) {
      JsonObject o = new JsonObject();
      o.addProperty("text", sentences.get(i).getAsJsonObject().get("text").getAsString());
      (i < 96 ? train : test).append(o).append('\n');
    }
    Path trainFile = Files.writeString(dir.resolve("train.jsonl"), train);
    Path testFile = Files.writeString(dir.resolve("test.jsonl"), test);
    Recipe recipe = Recipe.parse(
        "passes: [{method: coda, targets: 'layer.*', fraction: 0.3333, min-tokens: 4, size: 32, temperature: 0.2, iterations: 20}]", "coda.yaml");
    RunResult[] runs = new RunResult[2];
    double[] rates = {1e-12, 1e-2};
    for (int i = 0; i < 2; i++) {
      RunConfig config = RunConfig.builder(List.of(trainFile), PretrainedModels.miniLmTokenizer(), dir.resolve("run" + i))
          .test(List.of(testFile)).maxLength(32).batchSize(8).epochs(1).learningRate(rates[i]).seed(3).threads(2).build();
      runs[i] = new Pipeline(config, RunListener.SILENT).run(PretrainedModels.miniLm(), recipe, new CodaDistillTask());
    }
    double before = runs[0].last().test().get("distill_mse");
    double after = runs[1].last().test().get("distill_mse");
    assertThat(before).as("CoDA at init differs from the dense model").isGreaterThan(1e-3);
    assertThat(after).as("held-out MSE after 12 steps vs untrained %s", before).isLessThan(0.75 * before);

    Model untrained = ModelIO.load(runs[0].tunedModel());
    Model trained = ModelIO.load(runs[1].tunedModel());
    List<String> names = TrainableRegistry.read(trained).stream().map(e -> e.initializer()).toList();
    assertThat(names).hasSize(30);
    for (String name : names) {
      float[] a = untrained.graph().valueOrThrow(name).initializer().orElseThrow().toFloatArray();
      float[] b = trained.graph().valueOrThrow(name).initializer().orElseThrow().toFloatArray();
      double moved = 0;
      for (int i = 0; i < a.length; i++) moved = Math.max(moved, Math.abs(a[i] - b[i]));
      assertThat(moved).as("%s moved (it gets gradient)", name).isGreaterThan(1e-4);
    }
  }
}
