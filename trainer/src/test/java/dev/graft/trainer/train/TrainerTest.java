package dev.graft.trainer.train;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtProvider;
import dev.graft.fixtures.TinyModels;
import dev.graft.ir.Model;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.TrainableRegistry;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The training loop: accumulation, determinism, checkpoints, devices and the errors users meet. */
class TrainerTest {
  private static final List<String> TRAINABLE = List.of("fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias");

  private static TrainStepGraph spiralGraphs(double clip) {
    return TrainStepGraph.builder(TrainData.spiralNet(32, 16, 21))
        .trainables(TRAINABLE)
        .clipGradNorm(clip)
        .build();
  }

  private static Trainer trainer(TrainStepGraph g, LrSchedule s) throws Exception {
    return Trainer.builder(g).schedule(s).intraOpThreads(1).build();
  }

  @Test
  void accumulatingMicroBatchesGivesTheOneBigBatchUpdate() throws Exception {
    TrainData.Points data = TrainData.spirals(32, 0.02, 4);
    for (double clip : new double[] {0, 0.1}) {
      TrainStepGraph g = spiralGraphs(clip);
      LrSchedule s = LrSchedule.constant(0.01);
      try (Trainer big = trainer(g, s); Trainer micro = trainer(g, s)) {
        for (int step = 0; step < 3; step++) {
          int at = step * 16;
          StepResult a = big.trainStep(data.batch(at, at + 16));
          StepResult b =
              micro.trainStep(List.of(data.batch(at, at + 4), data.batch(at + 4, at + 8), data.batch(at + 8, at + 16 - 4), data.batch(at + 12, at + 16)));
          assertThat(b.loss()).isCloseTo(a.loss(), within(1e-5));
          assertThat(b.gradNorm()).isCloseTo(a.gradNorm(), within(1e-5));
          assertThat(b.step()).isEqualTo(a.step());
        }
        Map<String, Tensor> pa = big.stateTensors(), pb = micro.stateTensors();
        for (String name : pa.keySet()) {
          float[] x = pa.get(name).toFloatArray(), y = pb.get(name).toFloatArray();
          for (int i = 0; i < x.length; i++) {
            assertThat(y[i]).as("%s[%s] with clip %s", name, i, clip).isCloseTo(x[i], within(2e-5f * Math.max(1, Math.abs(x[i]))));
          }
        }
        // The updates are not trivially equal: training moved the parameters.
        assertThat(pa.get("fc3.weight").toFloatArray()).isNotEqualTo(g.forward().graph().initializer("fc3.weight").get().initializer().get().toFloatArray());
      }
    }
  }

  @Test
  void trainingIsDeterministicOnTheCpuWithOneThread() throws Exception {
    TrainData.Points data = TrainData.spirals(40, 0.02, 8);
    TrainStepGraph g = spiralGraphs(1.0);
    List<List<Double>> runs = new ArrayList<>();
    List<Map<String, Tensor>> finals = new ArrayList<>();
    for (int run = 0; run < 2; run++) {
      try (Trainer t = trainer(g, LrSchedule.linear(0.02, 3, 20, 0))) {
        List<Double> losses = new ArrayList<>();
        for (int step = 0; step < 20; step++) {
          int at = (step * 16) % 64;
          losses.add(t.trainStep(data.batch(at, at + 16)).loss());
        }
        runs.add(losses);
        finals.add(t.stateTensors());
      }
    }
    assertThat(runs.get(1)).isEqualTo(runs.get(0));
    for (String name : finals.get(0).keySet()) {
      assertThat(finals.get(1).get(name).rawData()).as(name).isEqualTo(finals.get(0).get(name).rawData());
    }
  }

  @Test
  void resumingFromACheckpointGivesTheSameNextLoss(@TempDir Path dir) throws Exception {
    TrainData.Points data = TrainData.spirals(40, 0.02, 9);
    TrainStepGraph g = spiralGraphs(1.0);
    LrSchedule s = LrSchedule.cosine(0.02, 2, 12, 1e-3);
    Path ckpt = dir.resolve("step5.safetensors");
    List<Double> uninterrupted = new ArrayList<>();
    try (Trainer t = trainer(g, s)) {
      for (int step = 0; step < 8; step++) {
        if (step == 5) t.saveCheckpoint(ckpt);
        uninterrupted.add(t.trainStep(data.batch(step * 8, step * 8 + 8)).loss());
      }
    }
    Checkpoints.Checkpoint c = Checkpoints.read(ckpt);
    assertThat(c.step()).isEqualTo(5);
    assertThat(c.tensors()).containsKeys("fc3.weight", StateNames.m("fc3.weight"), StateNames.v("fc2.bias"));
    assertThat(c.schedule()).containsEntry("type", "cosine");
    try (Trainer t = trainer(g, s)) {
      t.loadCheckpoint(ckpt);
      assertThat(t.step()).isEqualTo(5);
      for (int step = 5; step < 8; step++) {
        StepResult r = t.trainStep(data.batch(step * 8, step * 8 + 8));
        assertThat(r.loss()).as("loss of step %s", step + 1).isEqualTo(uninterrupted.get(step));
        assertThat(r.learningRate()).isEqualTo(s.lr(step + 1));
      }
    }
    // A fresh trainer without the checkpoint takes a different step 6: the test can fail.
    try (Trainer t = trainer(g, s)) {
      assertThat(t.trainStep(data.batch(40, 48)).loss()).isNotEqualTo(uninterrupted.get(5));
    }
  }

  @Test
  void aCheckpointRefusesAnotherScheduleOrOtherTrainables(@TempDir Path dir) throws Exception {
    Path ckpt = dir.resolve("c.safetensors");
    TrainStepGraph g = spiralGraphs(0);
    try (Trainer t = trainer(g, LrSchedule.constant(0.01))) {
      t.trainStep(TrainData.spirals(4, 0, 1).all());
      t.saveCheckpoint(ckpt);
    }
    try (Trainer t = trainer(g, LrSchedule.constant(0.02))) {
      assertThatThrownBy(() -> t.loadCheckpoint(ckpt)).hasMessageContaining("same LrSchedule");
    }
    TrainStepGraph fewer =
        TrainStepGraph.builder(TrainData.spiralNet(32, 16, 21)).trainables(List.of("fc3.weight", "fc3.bias")).build();
    try (Trainer t = trainer(fewer, LrSchedule.constant(0.01))) {
      assertThatThrownBy(() -> t.loadCheckpoint(ckpt)).hasMessageContaining("fc2.weight").hasMessageContaining("same trainable");
    }
  }

  @Test
  void trainStepLossIsTheEvalLossBeforeTheUpdate() throws Exception {
    Map<String, Tensor> batch = TrainData.spirals(20, 0.02, 2).all();
    try (Trainer t = trainer(spiralGraphs(0), LrSchedule.constant(0.05))) {
      EvalResult before = t.evalStep(batch);
      StepResult r = t.trainStep(batch);
      assertThat(r.loss()).isEqualTo(before.loss());
      assertThat(r.logits().toFloatArray()).isEqualTo(before.logits().toFloatArray());
      assertThat(t.evalStep(batch).loss()).isLessThan(before.loss());
    }
  }

  @Test
  void trainablesComeFromTheModelMetadataByDefault() {
    Model m = TrainData.spiralNet(8, 4, 1);
    TrainableRegistry.write(
        m, List.of(new TrainableRegistry.Entry("fc3.weight", "head", "fc3", "weight"), new TrainableRegistry.Entry("fc3.bias", "head", "fc3", "bias")));
    assertThat(TrainStepGraph.builder(m).build().params()).extracting(TrainStepGraph.Param::name).containsExactly("fc3.weight", "fc3.bias");
    assertThat(Trainables.matching(m, "fc[23]\\.bias")).containsExactly("fc2.bias", "fc3.bias");
    assertThatThrownBy(() -> TrainStepGraph.builder(TrainData.spiralNet(8, 4, 1)).build())
        .hasMessageContaining("No trainable parameters")
        .hasMessageContaining("graft.trainable");
  }

  @Test
  void errorsSayWhatAndHowToFix() {
    Model old = TinyModels.mlp();
    old.setOpset("", 13);
    assertThatThrownBy(() -> TrainStepGraph.builder(old).trainables(List.of("fc2.bias")).build())
        .hasMessageContaining("the model is at opset 13")
        .hasMessageContaining("WorkingModels.load");
    assertThatThrownBy(() -> TrainStepGraph.builder(TinyModels.mlp()).trainables(List.of("fc9.bias")).build())
        .hasMessageContaining("'fc9.bias' is not an initializer");
    assertThatThrownBy(() -> TrainStepGraph.builder(TinyModels.mlp()).logits("y").trainables(List.of("fc2.bias")).build())
        .hasMessageContaining("no output 'y'")
        .hasMessageContaining("[logits]");
    assertThatThrownBy(() -> TrainStepGraph.builder(TinyModels.mlp()).labels("x").trainables(List.of("fc2.bias")).build())
        .hasMessageContaining("labels input 'x' would clash");
  }

  @Test
  void aBatchMustFeedExactlyTheModelInputsAndLabels() throws Exception {
    try (Trainer t = trainer(spiralGraphs(0), LrSchedule.constant(0.01))) {
      Map<String, Tensor> batch = TrainData.spirals(4, 0, 1).all();
      assertThatThrownBy(() -> t.trainStep(Map.of("x", batch.get("x"))))
          .hasMessageContaining("[labels, x]");
    }
  }

  @Test
  void theTinyMlpFixtureTrainsToo() throws Exception {
    TrainStepGraph g = TrainStepGraph.builder(TinyModels.mlp(2, 16, 2, 5)).trainables(Trainables.matching(TinyModels.mlp(), "fc.*")).build();
    assertThat(g.params()).extracting(TrainStepGraph.Param::name).containsExactly("fc1.weight", "fc1.bias", "fc2.bias");
    try (Trainer t = trainer(g, LrSchedule.constant(0.02))) {
      Map<String, Tensor> batch = TrainData.spirals(30, 0, 3).all();
      double first = t.trainStep(batch).loss();
      for (int i = 0; i < 30; i++) t.trainStep(batch);
      assertThat(t.evalStep(batch).loss()).isLessThan(first);
    }
  }

  @Test
  void devicesParseAndCudaWithoutItsProviderSaysWhatIsMissing() throws Exception {
    assertThat(Device.parse("cpu")).isEqualTo(Device.cpu());
    assertThat(Device.parse("CUDA")).isEqualTo(Device.cuda(0));
    assertThat(Device.parse("cuda:3")).isEqualTo(Device.cuda(3));
    assertThat(Device.parse("cuda:3").toString()).isEqualTo("cuda:3");
    assertThatThrownBy(() -> Device.parse("gpu")).hasMessageContaining("use cpu, cuda or cuda:N");
    assertThatThrownBy(() -> Device.parse("cuda:x")).hasMessageContaining("device number");
    if (!OrtEnvironment.getAvailableProviders().contains(OrtProvider.CUDA)) {
      assertThatThrownBy(() -> Trainer.builder(spiralGraphs(0)).device(Device.parse("cuda")).build())
          .isInstanceOf(IllegalStateException.class)
          .hasMessageContaining("onnxruntime_gpu jar (build with -Pcuda)")
          .hasMessageContaining("CUDA 12 + cuDNN 9");
    }
  }

  @Test
  void schedulesWarmUpThenDecay() {
    LrSchedule lin = LrSchedule.linear(1.0, 4, 14, 0.0);
    assertThat(lin.lr(1)).isEqualTo(0.25);
    assertThat(lin.lr(4)).isEqualTo(1.0);
    assertThat(lin.lr(9)).isCloseTo(0.5, within(1e-12));
    assertThat(lin.lr(14)).isEqualTo(0.0);
    assertThat(lin.lr(100)).isEqualTo(0.0);
    LrSchedule cos = LrSchedule.cosine(1.0, 0, 10, 0.1);
    assertThat(cos.lr(5)).isCloseTo(0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI * 0.5)), within(1e-12));
    assertThat(cos.lr(10)).isCloseTo(0.1, within(1e-12));
    assertThat(LrSchedule.constant(0.3).lr(7)).isEqualTo(0.3);
    assertThatThrownBy(() -> LrSchedule.linear(1, 10, 10, 0)).hasMessageContaining("must exceed its warm-up");
  }
}
