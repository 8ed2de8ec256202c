package dev.graft.trainer.train;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.graft.fixtures.TinyModels;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.peft.ClassificationHeadPass;
import dev.graft.rewrite.peft.ClassificationHeadPass.Pooling;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The tiny BERT-like encoder with a mean-pooling head, everything frozen but the last layer's
 * LayerNorm gamma and beta and the head.
 */
class BertLikeTrainingTest {
  static final int BATCH = 8, SEQ = 12;
  private static final List<String> LAST_LAYER_NORMS =
      List.of(
          "encoder.layer.1.attention.output.LayerNorm.weight",
          "encoder.layer.1.attention.output.LayerNorm.bias",
          "encoder.layer.1.output.LayerNorm.weight",
          "encoder.layer.1.output.LayerNorm.bias");

  /** The tiny encoder with a 2-class mean-pooling head; logits is its only output. */
  static Model classifier() {
    Model m = TinyModels.bertLike(TinyModels.Flavour.FUSED_OPSET17);
    new ClassificationHeadPass(new ClassificationHeadPass.Config(2, Pooling.MEAN, "last_hidden_state", "attention_mask", false, 42))
        .run(m);
    return m;
  }

  /** The last layer's LayerNorm gammas and betas, then the head's weight and bias. */
  static List<String> trainable(Model classifier) {
    List<String> head = ClassificationHeadPass.parameterNames(classifier);
    assertThat(head).hasSize(2);
    List<String> all = new ArrayList<>(LAST_LAYER_NORMS);
    all.addAll(head);
    return List.copyOf(all);
  }

  /** Random token ids, padded sequences of lengths 4..SEQ, and a label per sequence. */
  static Map<String, Tensor> batch(long seed, int vocab) {
    Random rnd = new Random(seed);
    long[] ids = new long[BATCH * SEQ], mask = new long[BATCH * SEQ], types = new long[BATCH * SEQ], labels = new long[BATCH];
    for (int b = 0; b < BATCH; b++) {
      int len = 4 + rnd.nextInt(SEQ - 3);
      for (int s = 0; s < SEQ; s++) {
        ids[b * SEQ + s] = s < len ? 1 + rnd.nextInt(vocab - 1) : 0;
        mask[b * SEQ + s] = s < len ? 1 : 0;
      }
      labels[b] = b % 2;
    }
    long[] dims = {BATCH, SEQ};
    return Map.of(
        "input_ids", DenseTensor.ofLongs("input_ids", dims, ids),
        "attention_mask", DenseTensor.ofLongs("attention_mask", dims, mask),
        "token_type_ids", DenseTensor.ofLongs("token_type_ids", dims, types),
        "labels", DenseTensor.ofLongs("labels", new long[] {BATCH}, labels));
  }

  @Test
  void trainStepLossIsTheEvalLossAndFallsOverFiftySteps() throws Exception {
    Model encoder = TinyModels.bertLike(TinyModels.Flavour.FUSED_OPSET17);
    Model model = classifier();
    List<String> trainable = trainable(model);
    Map<String, Tensor> batch = batch(1, TinyModels.BERT_VOCAB);

    // The head computes masked mean pooling: check it against the encoder's output.
    Map<String, Tensor> inputs = new HashMap<>(batch);
    inputs.remove("labels");
    float[] hidden = OrtRun.run(encoder, inputs).get("last_hidden_state").toFloatArray();
    float[] w = model.graph().initializer(ClassificationHeadPass.parameterNames(model).get(0)).get().initializer().get().toFloatArray();
    long[] mask = batch.get("attention_mask").toLongArray();
    int h = TinyModels.BERT_HIDDEN;
    double[] expectedLogits = new double[BATCH * 2];
    for (int b = 0; b < BATCH; b++) {
      double n = 0;
      double[] pooled = new double[h];
      for (int s = 0; s < SEQ; s++) {
        if (mask[b * SEQ + s] == 0) continue;
        n++;
        for (int k = 0; k < h; k++) pooled[k] += hidden[(b * SEQ + s) * h + k];
      }
      for (int c = 0; c < 2; c++) {
        for (int k = 0; k < h; k++) expectedLogits[b * 2 + c] += pooled[k] / n * w[k * 2 + c];
      }
    }

    TrainStepGraph graphs = TrainStepGraph.builder(model).trainables(trainable).clipGradNorm(1.0).build();
    try (Trainer t = Trainer.builder(graphs).schedule(LrSchedule.constant(5e-3)).intraOpThreads(1).build()) {
      EvalResult eval = t.evalStep(batch);
      float[] logits = eval.logits().toFloatArray();
      for (int i = 0; i < logits.length; i++) assertThat((double) logits[i]).isCloseTo(expectedLogits[i], within(1e-4));

      List<Double> losses = new ArrayList<>();
      for (int step = 0; step < 50; step++) losses.add(t.trainStep(batch).loss());
      assertThat(losses.get(0)).as("train-step loss vs eval loss, same batch, before the update").isCloseTo(eval.loss(), within(1e-6 * eval.loss()));
      assertThat(losses.get(49)).isLessThan(losses.get(0) * 0.5);
      assertThat(t.evalStep(batch).loss()).isLessThan(losses.get(49));

      // Frozen weights are untouched; the trained ones moved.
      Model tuned = t.exportTrainedModel();
      for (Value init : model.graph().initializers()) {
        Tensor now = tuned.graph().initializer(init.name()).get().initializer().get();
        if (trainable.contains(init.name())) {
          assertThat(now.rawData()).as(init.name()).isNotEqualTo(init.initializer().get().rawData());
        } else {
          assertThat(now.rawData()).as(init.name()).isEqualTo(init.initializer().get().rawData());
        }
      }
    }
  }

  @Test
  void backwardOnlyTouchesTheLastLayer() {
    Model model = classifier();
    List<String> trainable = trainable(model);
    Model step = TrainStepGraph.builder(model).trainables(trainable).build().trainStep();
    // Gradient nodes are named after the forward node they differentiate: none for layer 0 or
    // the embeddings, whose weights are frozen and lie before every trainable.
    assertThat(step.graph().nodes())
        .filteredOn(n -> n.name().startsWith("grad/"))
        .isNotEmpty()
        .noneMatch(n -> n.name().contains("layer.0") || n.name().contains("embeddings"));
    // Frozen weights stay initializers; the trainables became inputs.
    assertThat(step.graph().initializer("onnx::MatMul_700")).isPresent();
    assertThat(step.graph().inputs()).extracting(Value::name).containsAll(trainable);
    assertThat(step.graph().initializers()).extracting(Value::name).doesNotContainAnyElementsOf(trainable);
  }
}
