package dev.graft.trainer.autodiff;

import static org.assertj.core.api.Assertions.assertThat;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.graft.fixtures.TinyDecoders;
import dev.graft.fixtures.TinyDecoders.Config;
import dev.graft.ir.Attr;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.Verifier;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.decompose.ContribDecomposition;
import dev.graft.rewrite.peft.LoraPass;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Gradients through whole decoders: LoRA's A in the first query projection, differentiated
 * through the standard form's rotary, GQA repeat and causal mask, or through the decomposed GenAI
 * form (GroupQueryAttention, SkipSimplifiedLayerNormalization, MatMulNBits with 4-bit weights),
 * against central differences of the deployed graph run by ORT's own kernels.
 */
class DecoderGradientTest {
  private static final OrtEnvironment ENV = OrtEnvironment.getEnvironment();
  private static final Config C = Config.small();
  private static final long[] IDS = {3, 141, 59, 26, 5};
  private static final String A = "layer.0.attention.query.lora_A";

  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"standard", "genai int4"})
  void loraGradientAgreesWithFiniteDifferences(String form) throws OrtException {
    Model deployed = withLossAndLora(form);
    Model training = withLossAndLora(form);
    new ContribDecomposition().run(training);
    dev.graft.ir.infer.ShapeInference.infer(training);
    Value a = training.graph().valueOrThrow(A);
    Map<Value, Value> grads = Backprop.gradients(training, training.graph().valueOrThrow("loss"), List.of(a));
    Value g = grads.get(a);
    g.setTypeOf(a);
    training.graph().addOutput(g);
    Verifier.verify(training);
    float[] analytic = run(training, g.name());

    float[] a0 = deployed.graph().valueOrThrow(A).initializer().orElseThrow().toFloatArray();
    SplittableRandom rnd = new SplittableRandom(7);
    double eps = 1e-2;
    // A few coordinates, and one random direction (the dot-product check).
    for (int trial = 0; trial < 4; trial++) {
      int i = rnd.nextInt(a0.length);
      double fd = (lossAt(deployed, a0, i, eps, null) - lossAt(deployed, a0, i, -eps, null)) / (2 * eps);
      assertThat(analytic[i]).as("d loss / d A[%s]", i).isCloseTo((float) fd, org.assertj.core.data.Offset.offset((float) (2e-2 * Math.max(1, Math.abs(fd)))));
    }
    float[] dir = new float[a0.length];
    double dot = 0;
    double norm = 0;
    for (int i = 0; i < dir.length; i++) {
      dir[i] = (float) rnd.nextGaussian();
      norm += dir[i] * dir[i];
    }
    for (int i = 0; i < dir.length; i++) {
      dir[i] /= (float) Math.sqrt(norm); // a unit direction keeps the step small
      dot += dir[i] * analytic[i];
    }
    double fd = (lossAt(deployed, a0, -1, eps, dir) - lossAt(deployed, a0, -1, -eps, dir)) / (2 * eps);
    assertThat(dot).isCloseTo(fd, org.assertj.core.data.Offset.offset(2e-2 * Math.max(1, Math.abs(fd))));
    assertThat(Math.abs(fd)).isGreaterThan(1e-3);
  }

  /** The decoder with LoRA (random B so that A has a gradient) and loss = sum(logits * R). */
  private static Model withLossAndLora(String form) {
    Model m = form.equals("standard") ? TinyDecoders.standard(C) : TinyDecoders.genAi(C, true);
    new LoraPass(Targets.glob("layer.0.attention.query"), LoraPass.Config.defaults().withRank(2)).run(m);
    Value b = m.graph().valueOrThrow("layer.0.attention.query.lora_B");
    SplittableRandom rnd = new SplittableRandom(3);
    float[] noise = new float[Math.toIntExact(b.initializer().orElseThrow().numElements())];
    for (int i = 0; i < noise.length; i++) noise[i] = (float) (0.5 * rnd.nextGaussian());
    m.graph().setInitializer(b, DenseTensor.ofFloats(null, b.initializer().get().dims(), noise));
    float[] r = new float[IDS.length * C.vocab()];
    for (int i = 0; i < r.length; i++) r[i] = (float) rnd.nextGaussian();
    GraphBuilder gb = GraphBuilder.on(m.graph()).prefix("/loss");
    Value weights = gb.initializer("loss.R", DenseTensor.ofFloats(null, new long[] {1, IDS.length, C.vocab()}, r));
    Value loss = gb.op("ReduceSum", List.of(gb.op("Mul", m.graph().valueOrThrow("logits"), weights)), Attr.of("keepdims", 0L));
    gb.output("loss", loss);
    return m;
  }

  private static double lossAt(Model deployed, float[] a0, int index, double eps, float[] dir) throws OrtException {
    float[] a = a0.clone();
    if (dir == null) a[index] += (float) eps;
    else for (int i = 0; i < a.length; i++) a[i] += (float) (eps * dir[i]);
    Value av = deployed.graph().valueOrThrow(A);
    deployed.graph().setInitializer(av, DenseTensor.ofFloats(null, av.initializer().get().dims(), a));
    try {
      return run(deployed, "loss")[0];
    } finally {
      deployed.graph().setInitializer(av, DenseTensor.ofFloats(null, av.initializer().get().dims(), a0));
    }
  }

  private static float[] run(Model m, String output) throws OrtException {
    try (OrtSession s = ENV.createSession(ModelIO.toBytes(m), new OrtSession.SessionOptions())) {
      Map<String, OnnxTensor> f = new HashMap<>();
      try {
        for (String name : s.getInputNames()) {
          long[] v;
          switch (name) {
            case "input_ids" -> v = IDS;
            case "attention_mask" -> v = new long[] {1, 1, 1, 1, 1};
            case "position_ids" -> v = new long[] {0, 1, 2, 3, 4};
            default -> v = null;
          }
          f.put(name, v != null
              ? OnnxTensor.createTensor(ENV, LongBuffer.wrap(v), new long[] {1, IDS.length})
              : OnnxTensor.createTensor(ENV, FloatBuffer.allocate(0), new long[] {1, C.kvHeads(), 0, C.headDim()}));
        }
        try (OrtSession.Result r = s.run(f, java.util.Set.of(output))) {
          FloatBuffer fb = ((OnnxTensor) r.get(output).get()).getFloatBuffer();
          float[] out = new float[fb.remaining()];
          fb.get(out);
          return out;
        }
      } finally {
        f.values().forEach(OnnxTensor::close);
      }
    }
  }
}
