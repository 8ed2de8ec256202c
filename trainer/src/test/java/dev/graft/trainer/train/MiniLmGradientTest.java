package dev.graft.trainer.train;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.fixtures.PretrainedModels;
import dev.graft.ir.Model;
import dev.graft.ir.convert.LayerNormFusion;
import dev.graft.ir.convert.WorkingModels;
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
 * The real all-MiniLM-L6-v2 (opset 11, upgraded to 17 and its LayerNorms fused) with a
 * mean-pooling head; the head and every LayerNorm gamma and beta trainable. The train graphs'
 * gradients agree with central finite differences of the eval graph's loss, both run by ORT.
 */
class MiniLmGradientTest {
  static final int BATCH = 2, SEQ = 16;

  /** MiniLM, upgraded to opset 17, LayerNorms fused, with a 2-class mean-pooling head. */
  static Model miniLmClassifier() {
    Model m = WorkingModels.load(PretrainedModels.miniLm());
    LayerNormFusion.fuse(m);
    new ClassificationHeadPass(new ClassificationHeadPass.Config(2, Pooling.MEAN, "last_hidden_state", "attention_mask", false, 7))
        .run(m);
    return m;
  }

  @Test
  void gradientsAgreeWithFiniteDifferencesOnSampledCoordinates() throws Exception {
    Model model = miniLmClassifier();
    List<String> trainables = new ArrayList<>(Trainables.matching(model, ".*LayerNorm\\.(weight|bias)"));
    assertThat(trainables).hasSize(26);
    List<String> head = ClassificationHeadPass.parameterNames(model);
    assertThat(head).hasSize(2);
    trainables.addAll(head);
    TrainStepGraph graphs = TrainStepGraph.builder(model).trainables(trainables).build();

    Random rnd = new Random(17);
    long[] ids = new long[BATCH * SEQ], mask = new long[BATCH * SEQ];
    for (int b = 0; b < BATCH; b++) {
      int len = b == 0 ? SEQ : 9;
      for (int s = 0; s < SEQ; s++) {
        ids[b * SEQ + s] = s == 0 ? 101 : s == len - 1 ? 102 : s < len ? 1000 + rnd.nextInt(28000) : 0;
        mask[b * SEQ + s] = s < len ? 1 : 0;
      }
    }
    long[] dims = {BATCH, SEQ};
    Map<String, Tensor> feeds = new HashMap<>();
    feeds.put("input_ids", DenseTensor.ofLongs("input_ids", dims, ids));
    feeds.put("attention_mask", DenseTensor.ofLongs("attention_mask", dims, mask));
    feeds.put("token_type_ids", DenseTensor.ofLongs("token_type_ids", dims, new long[BATCH * SEQ]));
    feeds.put("labels", DenseTensor.ofLongs("labels", new long[] {BATCH}, 0, 1));
    Map<String, float[]> params = new HashMap<>();
    for (TrainStepGraph.Param p : graphs.params()) {
      Tensor t = model.graph().initializer(p.name()).get().initializer().get();
      params.put(p.name(), t.toFloatArray());
      feeds.put(p.name(), t);
      feeds.put(StateNames.gradSum(p.name()), DenseTensor.ofFloats("", p.dims(), new float[(int) p.numElements()]));
    }
    Map<String, Tensor> out = OrtRun.run(graphs.accumulate(), feeds);

    // Sampled coordinates: the head, and LayerNorms from the last layer back to the embeddings.
    String[] where = {
      head.get(0), head.get(1),
      "encoder.layer.5.output.LayerNorm.weight", "encoder.layer.5.output.LayerNorm.bias",
      "encoder.layer.3.attention.output.LayerNorm.weight", "encoder.layer.1.output.LayerNorm.bias",
      "encoder.layer.4.attention.output.LayerNorm.bias",
      "encoder.layer.0.attention.output.LayerNorm.weight", "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"
    };
    try (EvalRunner eval = new EvalRunner(graphs.eval(), feeds)) {
      for (String name : where) {
        float[] grad = out.get(StateNames.updated(StateNames.gradSum(name))).toFloatArray();
        // The coordinate with the largest gradient, and a random one.
        int big = 0;
        for (int i = 1; i < grad.length; i++) if (Math.abs(grad[i]) > Math.abs(grad[big])) big = i;
        for (int i : new int[] {big, rnd.nextInt(grad.length)}) {
          double h = 1e-2;
          float[] p = params.get(name).clone();
          float x0 = p[i];
          p[i] = (float) (x0 + h);
          double plus = eval.loss(name, p);
          p[i] = (float) (x0 - h);
          double minus = eval.loss(name, p);
          double fd = (plus - minus) / (2 * h);
          assertThat(Math.abs(fd - grad[i])).as("%s[%s]: analytic %s, finite difference %s", name, i, grad[i], fd)
              .isLessThanOrEqualTo(1e-4 + 0.01 * Math.abs(fd));
        }
      }
    }
  }
}
