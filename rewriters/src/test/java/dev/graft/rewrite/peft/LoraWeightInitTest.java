package dev.graft.rewrite.peft;

import static dev.graft.rewrite.peft.PeftFixtures.copy;
import static dev.graft.rewrite.peft.PeftFixtures.tensor;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.Ort;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.discover.LinearModule;
import dev.graft.rewrite.recipe.Recipe;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * PiSSA and OLoRA initialisations of LoRA: the model is unchanged at initialisation, and A, B and
 * the residual are checked against their closed forms by graphs run on ONNX Runtime (orthogonality,
 * reconstruction, the top singular value by power iteration), not by the decomposition that made
 * them.
 */
class LoraWeightInitTest extends PeftFixtures.MiniLmSetup {
  private static final String MODULE = "layer.1.ffn.up"; // [384, 1536]
  private static final int R = 8;
  private static final float S = 16f / 8;

  @Test
  void identityAtInitialisationOnMiniLm() throws Exception {
    for (String init : List.of("pissa", "olora")) {
      Model m = copy(miniLm);
      PassResult r = Recipe.parse("passes: [{method: lora, init: " + init + "}]", init + ".yaml").manager().run(m).get(0);
      assertThat(r.parametersAdded()).isEqualTo(12L * (384 * 8 + 8 * 384));
      // x·W_res + s·(x·A)·B rounds two float32 sums where x·W rounded one, and the principal
      // part moved to the branch is most of W: 2.2e-5 absolute for PiSSA, 9.8e-6 for OLoRA, on
      // outputs up to 5.6 (4e-6 relative). The bound is 1e-5 of the largest output.
      double diff = Ort.maxAbsDiff(original, PeftFixtures.lastHidden(m, sentences));
      assertThat(diff).as(init).isLessThanOrEqualTo(1e-5 * PeftFixtures.maxAbs(original));
      // The frozen weight holds the residual, and B is not zero: the update is split, not absent.
      LinearModule q = PeftFixtures.module(m, "layer.0.attention.query");
      LinearModule q0 = PeftFixtures.module(copy(miniLm), "layer.0.attention.query");
      assertThat(Ort.maxAbsDiff(q.weight().initializer().get().toFloatArray(), q0.weight().initializer().get().toFloatArray()))
          .as(init).isGreaterThan(1e-3);
      assertThat(PeftFixtures.maxAbs(tensor(m, "layer.0.attention.query.lora_B").toFloatArray())).as(init).isGreaterThan(1e-2);
      // Idempotent: a second run changes nothing.
      assertThat(new LoraPass(Targets.glob("layer.*.attention.{query,value}"), LoraPass.Config.defaults().withInit(LoraPass.Init.PISSA))
          .run(m).changed()).isFalse();
    }
  }

  @Test
  void pissaFactorsAreThePrincipalSingularDirections() {
    Model m = adapted(LoraPass.Init.PISSA);
    Map<String, Ort.Out> o = Ort.run(oracle(m), Map.of());
    float[] ata = o.get("ata").data();
    float[] bbt = o.get("bbt").data();
    // AᵀA = BBᵀ = diag(S_r / s), descending: orthogonal columns of A, orthogonal rows of B.
    double top = ata[0];
    for (int i = 0; i < R; i++) {
      for (int j = 0; j < R; j++) {
        if (i != j) {
          assertThat((double) Math.abs(ata[i * R + j])).as("AᵀA[%s,%s]", i, j).isLessThanOrEqualTo(1e-4 * top);
          assertThat((double) Math.abs(bbt[i * R + j])).as("BBᵀ[%s,%s]", i, j).isLessThanOrEqualTo(1e-4 * top);
        }
      }
      assertThat((double) ata[i * R + i]).isCloseTo(bbt[i * R + i], org.assertj.core.data.Percentage.withPercentage(1e-2));
      if (i > 0) assertThat(ata[i * R + i]).isLessThanOrEqualTo(ata[(i - 1) * R + i - 1]);
    }
    // s·AᵀA[0,0] is the largest singular value of W, found by power iteration on WᵀW.
    double sigma1 = o.get("sigma1").data()[0];
    assertThat(S * top).isCloseTo(sigma1, org.assertj.core.data.Percentage.withPercentage(0.1));
    // W_res + s·A·B = W, and the residual is orthogonal to the principal part (Frobenius).
    assertThat(max(o.get("reconError").data())).isLessThanOrEqualTo(1e-5);
    assertThat((double) Math.abs(o.get("cosine").data()[0])).isLessThanOrEqualTo(1e-4);
  }

  @Test
  void oloraFactorsAreTheQrFactors() {
    Model m = adapted(LoraPass.Init.OLORA);
    Map<String, Ort.Out> o = Ort.run(oracle(m), Map.of());
    float[] bbt = o.get("bbt").data();
    // B = Q_rᵀ: orthonormal rows.
    for (int i = 0; i < R; i++) {
      for (int j = 0; j < R; j++) assertThat((double) bbt[i * R + j]).isCloseTo(i == j ? 1 : 0, org.assertj.core.data.Offset.offset(1e-5));
    }
    // A = R_rᵀ with R upper triangular: A[i, k] = 0 for i < k.
    float[] a = tensor(m, MODULE + ".lora_A").toFloatArray();
    for (int i = 0; i < R; i++) {
      for (int k = i + 1; k < R; k++) assertThat(a[i * R + k]).as("A[%s,%s]", i, k).isEqualTo(0f);
    }
    // The first r rows of W (columns of Wᵀ) are reproduced by A·B alone; W_res + s·A·B = W.
    assertThat(max(o.get("firstRowsError").data())).isLessThanOrEqualTo(1e-5);
    assertThat(max(o.get("reconError").data())).isLessThanOrEqualTo(1e-5);
  }

  @Test
  void aRankLargerThanTheWeightIsRefused() {
    Model m = copy(miniLm);
    assertThatThrownBy(() -> new LoraPass(Targets.glob("layer.0.attention.query"),
            LoraPass.Config.defaults().withRank(400).withInit(LoraPass.Init.PISSA)).run(m))
        .hasMessageContaining("PiSSA: rank 400 is larger than the weight [384, 384] has; use a rank of at most 384");
  }

  /** MiniLM with LoRA (r 8, alpha 16) on {@link #MODULE} only, initialised by {@code init}. */
  private static Model adapted(LoraPass.Init init) {
    Model m = copy(miniLm);
    new LoraPass(Targets.glob(MODULE), LoraPass.Config.defaults().withInit(init)).run(m);
    return m;
  }

  /**
   * A graph of the closed-form checks for {@link #MODULE}: AᵀA, BBᵀ, |W_res + s·A·B - W|, the
   * first r rows of |A·B - W|, the cosine of W_res and A·B, and σ1 of W by 100 power iterations.
   */
  private static Model oracle(Model adapted) {
    Tensor w = PeftFixtures.<LinearModule>module(copy(miniLm), MODULE).weight().initializer().orElseThrow();
    GraphBuilder b = GraphBuilder.create("oracle");
    Value wv = b.initializer("w", w);
    Value a = b.initializer("a", tensor(adapted, MODULE + ".lora_A"));
    Value bb = b.initializer("b", tensor(adapted, MODULE + ".lora_B"));
    Value res = b.initializer("res", PeftFixtures.<LinearModule>module(adapted, MODULE).weight().initializer().orElseThrow());
    Value ab = b.op("MatMul", a, bb);
    out(b, "ata", b.op("MatMul", b.op("Transpose", a), a), R, R);
    out(b, "bbt", b.op("MatMul", bb, b.op("Transpose", bb)), R, R);
    out(b, "reconError", b.op("Abs", b.op("Sub", b.op("Add", res, b.op("Mul", ab, b.scalar(S))), wv)), 384, 1536);
    Value rows = b.op("Slice", List.of(b.op("Sub", ab, wv), b.int64s(0), b.int64s(R), b.int64s(0)));
    out(b, "firstRowsError", b.op("Abs", rows), R, 1536);
    Value dot = b.op("ReduceSum", List.of(b.op("Mul", res, ab)), Attr.of("keepdims", 0L));
    Value norms = b.op("Mul", b.op("ReduceL2", List.of(res), Attr.of("keepdims", 0L)), b.op("ReduceL2", List.of(ab), Attr.of("keepdims", 0L)));
    out(b, "cosine", b.op("Div", dot, norms));
    Value wt = b.op("Transpose", wv);
    Value v = b.floats(new long[] {1536, 1}, ones(1536));
    for (int k = 0; k < 100; k++) {
      v = b.op("LpNormalization", List.of(b.op("MatMul", wt, b.op("MatMul", wv, v))), Attr.of("axis", 0L), Attr.of("p", 2L));
    }
    out(b, "sigma1", b.op("ReduceL2", List.of(b.op("MatMul", wv, v)), Attr.of("keepdims", 0L)));
    return b.model(17);
  }

  private static void out(GraphBuilder b, String name, Value v, Object... dims) {
    b.typed(b.output(name, v), DataType.FLOAT, dims);
  }

  private static float[] ones(int n) {
    float[] x = new float[n];
    java.util.Arrays.fill(x, 1f);
    return x;
  }

  private static double max(float[] x) {
    return PeftFixtures.maxAbs(x);
  }
}
