package dev.graft.trainer.train;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.OpCensus;
import dev.graft.ir.analysis.Verifier;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.fixtures.PretrainedModels;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.rewrite.recipe.Recipe;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Padding-free training on the real MiniLM with LoRA on query and value and a mean-pooling head:
 * the unpadded eval and accumulate graphs against ORT's run of the padded ones (the oracle), on a
 * batch with padding and one without.
 */
class UnpaddingTest {
  /** examples/recipes/quickstart.yaml's passes. */
  private static final String QUICKSTART =
      """
      passes:
        - {method: lora, targets: ["layer.*.attention.query", "layer.*.attention.value"], rank: 8, alpha: 16}
        - {method: classification-head, classes: 2, pooling: mean}
      """;

  private static Model model;
  private static TrainStepGraph padded;
  private static TrainStepGraph unpadded;

  @BeforeAll
  static void build() {
    model = WorkingModels.load(PretrainedModels.miniLm());
    Recipe.parse(QUICKSTART, "quickstart.yaml").manager().run(model);
    padded = TrainStepGraph.builder(model).build();
    unpadded = TrainStepGraph.builder(model).unpad("attention_mask").build();
  }

  /** Rows of lengths {@code lens} (padded to the longest); random tokens, labels 0 and 1. */
  private static Map<String, Tensor> batch(int... lens) {
    int seq = java.util.Arrays.stream(lens).max().getAsInt();
    int rows = lens.length;
    Random rnd = new Random(3);
    long[] ids = new long[rows * seq], mask = new long[rows * seq];
    for (int b = 0; b < rows; b++) {
      for (int s = 0; s < seq; s++) {
        ids[b * seq + s] = s == 0 ? 101 : s == lens[b] - 1 ? 102 : s < lens[b] ? 1000 + rnd.nextInt(28000) : 0;
        mask[b * seq + s] = s < lens[b] ? 1 : 0;
      }
    }
    long[] dims = {rows, seq};
    Map<String, Tensor> f = new HashMap<>();
    f.put("input_ids", DenseTensor.ofLongs("input_ids", dims, ids));
    f.put("attention_mask", DenseTensor.ofLongs("attention_mask", dims, mask));
    f.put("token_type_ids", DenseTensor.ofLongs("token_type_ids", dims, new long[rows * seq]));
    long[] labels = new long[rows];
    for (int i = 0; i < rows; i++) labels[i] = i % 2;
    f.put("labels", DenseTensor.ofLongs("labels", new long[] {rows}, labels));
    return f;
  }

  private static Map<String, Tensor> withParams(Map<String, Tensor> batch, boolean gradSums) {
    Map<String, Tensor> f = new HashMap<>(batch);
    Random rnd = new Random(11);
    for (TrainStepGraph.Param p : padded.params()) {
      Tensor init = model.graph().initializer(p.name()).get().initializer().get();
      float[] v = init.toFloatArray();
      // LoRA's B starts at zero; give it values so that the branch (and dA) is not zero.
      if (p.name().endsWith(".lora_B")) for (int i = 0; i < v.length; i++) v[i] = (float) (0.02 * rnd.nextGaussian());
      f.put(p.name(), DenseTensor.ofFloats(p.name(), p.dims(), v));
      if (gradSums) f.put(StateNames.gradSum(p.name()), DenseTensor.ofFloats(null, p.dims(), new float[v.length]));
    }
    return f;
  }

  @Test
  void movesEveryLinearLayerOntoTheRealTokens() {
    Unpadding.Result r = unpadded.unpadding().orElseThrow();
    assertThat(r.applied()).isTrue();
    Model eval = unpadded.eval();
    assertThat(Verifier.problems(eval)).isEmpty();
    // Every MatMul by a weight (6 a layer, 4 LoRA products a layer) reads [1, tokens, features].
    long weightMatMuls = 0, unpaddedMatMuls = 0;
    for (Node n : eval.graph().nodes()) {
      if (!n.is("MatMul") || n.input(1).shape().map(s -> s.rank() != 2).orElse(true)) continue;
      weightMatMuls++;
      if (n.input(0).shape().get().dim(1).toString().equals(Unpadding.TOKENS)) unpaddedMatMuls++;
    }
    assertThat(weightMatMuls).isEqualTo(6 * 10 + 1);
    // The head's classifier reads the pooled [batch, hidden]: the only one left padded.
    assertThat(unpaddedMatMuls).isEqualTo(6 * 10);
    // A layer gathers once (the attention's output) and scatters three times (Q, K, V); the
    // embeddings' output is gathered, the last hidden state scattered for the pooling; the packed
    // attention rows' masks scatter each token's batch row and its mask value once for all layers.
    assertThat(OpCensus.of(eval.graph())).containsEntry("ScatterND", 6 * 3 + 1 + 2).containsEntry("NonZero", 1);
    assertThat(r.pads()).isEqualTo(6 * 3 + 1);
    // The residual stream joins every layer from the first attention output on into one group;
    // layer 0's query, key and value read the (padded) embeddings and stand alone.
    assertThat(r.groups()).isEqualTo(4);
    assertThat(padded.unpadding()).isEmpty();
  }

  @Test
  void splitsAndMergesAttentionHeadsStraightFromTheRealTokens() {
    // Q, K and V scatter each token's head slices into [batch, heads, seq, d], and the attention's
    // output gathers them back: no head-split Transpose and no padded [batch, seq, 384] copy is left.
    // The backward pass's head gradients go the same way; the only transposes left swap the last
    // two axes (a key's [batch, heads, d, seq]; ORT folds them into its FusedMatMul) or a weight.
    for (Model m : List.of(unpadded.eval(), unpadded.trainStep())) {
      List<String> headTransposes = new ArrayList<>();
      for (Node n : m.graph().nodes()) {
        if (!n.is("Transpose")) continue;
        long[] perm = n.attrLongs("perm").orElseThrow();
        if (perm.length == 4 && perm[1] != 1) headTransposes.add(n.name() + " " + java.util.Arrays.toString(perm));
      }
      assertThat(headTransposes).as(m.graph().name()).isEmpty();
    }
    Model eval = unpadded.eval();
    long headScatters = eval.graph().nodes().stream()
        .filter(n -> n.is("ScatterND") && n.output().shape().map(sh -> sh.rank() == 4).orElse(false)).count();
    assertThat(headScatters).isEqualTo(6 * 3);
    assertThat(OpCensus.of(eval.graph())).containsEntry("GatherND", 6);
    // Off (-Dgraft.train.unpadHeads=0) the model's own transposes stay: 4 a layer.
    System.setProperty("graft.train.unpadHeads", "0");
    try {
      Model rows = TrainStepGraph.builder(model).unpad("attention_mask").build().eval();
      assertThat(OpCensus.of(rows.graph())).doesNotContainKey("GatherND").containsEntry("Transpose", 6 * 4);
    } finally {
      System.clearProperty("graft.train.unpadHeads");
    }
  }

  @Test
  void packsShortRowsSideBySideIntoSharedAttentionRows() {
    // Rows of 12, 5, 9 and 3 tokens, longest first into the first packed row of 12 with room:
    // 12 alone, then 9 and 3 side by side, then 5.
    long[] dest = Unpadding.packing(batch(12, 5, 9, 3).get("attention_mask")).toLongArray();
    long[] want = new long[4 * 12];
    int[][] rowStartLength = {{0, 12}, {24, 5}, {12, 9}, {21, 3}};
    for (int r = 0; r < 4; r++) {
      for (int s = 0; s < rowStartLength[r][1]; s++) want[r * 12 + s] = rowStartLength[r][0] + s;
    }
    assertThat(dest).containsExactly(want);
    // Ones (the trainer's check of the padded computation): every row in a row of its own, in order.
    long[] ones = new long[3 * 5];
    java.util.Arrays.fill(ones, 1);
    long[] identity = new long[3 * 5];
    for (int i = 0; i < identity.length; i++) identity[i] = i;
    assertThat(Unpadding.packing(DenseTensor.ofLongs(null, new long[] {3, 5}, ones)).toLongArray()).containsExactly(identity);
    // Tokens anywhere in their row (here left padding) keep their order, side by side.
    long[] left = {0, 0, 1, 1, 0, 0, 0, 1};
    assertThat(Unpadding.packing(DenseTensor.ofLongs(null, new long[] {2, 4}, left)).toLongArray())
        .containsExactly(0, 0, 0, 1, 0, 0, 0, 2);

    assertThat(unpadded.unpadding().orElseThrow().packed()).isTrue();
    assertThat(unpadded.trainStep().graph().inputs()).anyMatch(v -> v.name().equals(Unpadding.PACKING));
    // The attention's products run on [packed rows, heads, seq, ...].
    assertThat(unpadded.eval().graph().nodes())
        .filteredOn(n -> n.is("Softmax"))
        .allMatch(n -> n.output().shape().orElseThrow().dim(0).toString().equals(Unpadding.PACKED_ROWS));
    System.setProperty("graft.train.packAttention", "0");
    try {
      TrainStepGraph rows = TrainStepGraph.builder(model).unpad("attention_mask").build();
      assertThat(rows.unpadding().orElseThrow().packed()).isFalse();
      assertThat(rows.trainStep().graph().inputs()).noneMatch(v -> v.name().equals(Unpadding.PACKING));
    } finally {
      System.clearProperty("graft.train.packAttention");
    }
  }

  @Test
  void lowersThePlaceholdersLeavingNothingUnread() {
    // No placeholder is left for ORT, and nothing the rewrite made goes unread (ORT would warn).
    for (Model m : List.of(unpadded.trainStep(), unpadded.eval(), unpadded.accumulate())) {
      List<String> unread = new ArrayList<>();
      for (Value v : m.graph().initializers()) if (!v.hasUses() && !v.isGraphOutput()) unread.add(v.name());
      for (Node n : m.graph().nodes()) {
        if (n.is("Constant") && !n.output(0).hasUses() && !n.output(0).isGraphOutput()) unread.add(n.output(0).name());
      }
      assertThat(unread).as(m.graph().name()).isEmpty();
      assertThat(m.graph().nodes()).noneMatch(n -> "dev.graft".equals(n.domain()));
      assertThat(Verifier.problems(m)).isEmpty();
    }
  }

  /** The batch with the token mask fed as the trainer feeds it (the attention mask), or ones. */
  private static Map<String, Tensor> tokenMask(Map<String, Tensor> feeds, boolean ones) {
    Map<String, Tensor> f = new HashMap<>(feeds);
    Tensor mask = feeds.get("attention_mask");
    long[] v = mask.toLongArray();
    if (ones) java.util.Arrays.fill(v, 1);
    Tensor tokens = DenseTensor.ofLongs(null, mask.dims(), v);
    f.put(Unpadding.TOKEN_MASK, tokens);
    f.put(Unpadding.PACKING, Unpadding.packing(tokens));
    return f;
  }

  @Test
  void lossLogitsAndGradientsAreThoseOfThePaddedGraph() throws Exception {
    for (Map<String, Tensor> b : List.of(batch(12, 5, 9, 3), batch(7, 7, 7))) {
      Map<String, Tensor> want = OrtRun.run(padded.accumulate(), withParams(b, true));
      Map<String, Tensor> got = OrtRun.run(unpadded.accumulate(), tokenMask(withParams(b, true), false));
      // Ones as the token mask: every row gathered, the padded graph's computation (the trainer's check).
      Map<String, Tensor> everyRow = OrtRun.run(unpadded.accumulate(), tokenMask(withParams(b, true), true));
      for (Map<String, Tensor> out : List.of(got, everyRow)) {
        assertClose(out.get(StateNames.LOSS), want.get(StateNames.LOSS), "loss");
        assertClose(out.get("logits"), want.get("logits"), "logits");
        for (TrainStepGraph.Param p : padded.params()) {
          String g = StateNames.updated(StateNames.gradSum(p.name()));
          assertClose(out.get(g), want.get(g), g);
        }
      }
    }
  }

  @Test
  void tokenLevelLogitsMadeByAMovedNodeStayTheGraphsOutput() throws Exception {
    // A per-token head: token_logits = last_hidden_state x W [384, 3], the loss reads it directly.
    Model tokens = model.copy();
    dev.graft.ir.Graph g = tokens.graph();
    Value h = g.lookup("last_hidden_state").orElseThrow();
    float[] w = new float[384 * 3];
    Random rnd = new Random(5);
    for (int i = 0; i < w.length; i++) w[i] = (float) (0.05 * rnd.nextGaussian());
    dev.graft.ir.build.GraphBuilder b = dev.graft.ir.build.GraphBuilder.on(g).atEnd();
    b.output("token_logits", b.op("MatMul", h, b.initializer("token_head", DenseTensor.ofFloats(null, new long[] {384, 3}, w))));
    TrainStepGraph graphs = TrainStepGraph.builder(tokens).logits("token_logits").loss(Loss.meanSquaredError())
        .trainables(Trainables.matching(tokens, ".*lora.*")).unpad("attention_mask").build();
    Model eval = graphs.eval();
    assertThat(eval.graph().outputs()).extracting(Value::name).contains("token_logits");
    // The head's MatMul moved: the output is the scatter back to [batch, seq, 3].
    assertThat(eval.graph().lookup("token_logits").orElseThrow().producer().orElseThrow().opType()).isEqualTo("Reshape");

    Map<String, Tensor> b0 = batch(12, 5, 9, 3);
    long[] dims = b0.get("attention_mask").dims();
    b0.put("labels", DenseTensor.ofFloats("labels", new long[] {dims[0], dims[1], 3}, new float[(int) (dims[0] * dims[1] * 3)]));
    Map<String, Tensor> feeds = new HashMap<>(b0);
    for (TrainStepGraph.Param p : graphs.params()) feeds.put(p.name(), tokens.graph().initializer(p.name()).get().initializer().get());
    float[] want = OrtRun.run(graphs.padded().eval(), feeds).get("token_logits").toFloatArray();
    float[] got = OrtRun.run(eval, tokenMask(feeds, false)).get("token_logits").toFloatArray();
    long[] mask = b0.get("attention_mask").toLongArray();
    for (int i = 0; i < want.length; i++) {
      double expected = mask[i / 3] == 0 ? 0 : want[i]; // padded rows come back as zeros
      assertThat((double) got[i]).as("token_logits[%s]", i).isCloseTo(expected, org.assertj.core.data.Offset.offset(1e-4));
    }
  }

  @Test
  void theExportedForwardModelKeepsItsForm() {
    assertThat(OpCensus.of(unpadded.forward().graph())).doesNotContainKeys("NonZero", "ScatterND");
  }

  @Test
  void refusesAMaskThatIsNotAnInput() {
    assertThatThrownBy(() -> TrainStepGraph.builder(model).unpad("mask").build())
        .hasMessageContaining("Cannot unpad on 'mask'")
        .hasMessageContaining("attention_mask");
  }

  @Test
  void leavesAModelWithoutTokenRowsAlone() {
    Model m = MiniLmGradientTest.miniLmClassifier();
    // A mask input with unnamed dims: nothing can be matched against it.
    Value mask = m.graph().inputs().stream().filter(v -> v.name().equals("attention_mask")).findFirst().get();
    mask.setType(dev.graft.ir.Type.tensor(dev.graft.ir.DataType.INT64, dev.graft.ir.Shape.of(
        dev.graft.ir.Dim.unknown(), dev.graft.ir.Dim.unknown())));
    dev.graft.ir.infer.ShapeInference.infer(m);
    Unpadding.Result r = Unpadding.apply(m, "attention_mask");
    assertThat(r.applied()).isFalse();
    assertThat(r.skipped()).get().asString().contains("unnamed dimension");
  }

  @Test
  void theTrainerChecksTheFirstPaddedBatchAndKeepsPaddingFreeTraining() throws Exception {
    List<String> notes = new ArrayList<>();
    try (Trainer t = Trainer.builder(unpadded).intraOpThreads(1).notes(notes::add).build()) {
      t.trainStep(batch(7, 7, 7)); // no padding: nothing to check yet
      assertThat(notes).isEmpty();
      // Six rows: the check runs on two of them (the shortest, 3 tokens, and the longest, 12).
      t.trainStep(batch(12, 5, 9, 3, 12, 8));
      assertThat(notes).singleElement().asString().startsWith("padding-free training:").contains("checked")
          .contains("short rows share attention rows");
      assertThat(t.graphs().unpadMask()).contains("attention_mask");
    }
  }

  @Test
  void aModelWhoseAttentionReadsPaddingTrainsPadded() throws Exception {
    // The attention's additive mask replaced by 0: padded keys now reach every real token.
    Model unmasked = model.copy();
    Value zero = unmasked.graph().addInitializer("zero_mask", DenseTensor.scalar(null, 0f));
    int rewired = 0;
    for (Node n : unmasked.graph().nodes()) {
      if (n.is("Add") && n.name().endsWith("attention/self/Add")) {
        n.setInput(1, zero);
        rewired++;
      }
    }
    assertThat(rewired).isEqualTo(6);
    TrainStepGraph graphs = TrainStepGraph.builder(unmasked).unpad("attention_mask").build();
    assertThat(graphs.unpadding().orElseThrow().applied()).isTrue();
    // No key mask before the softmax: rows packed side by side would see each other's keys.
    assertThat(graphs.unpadding().orElseThrow().packed()).isFalse();
    List<String> notes = new ArrayList<>();
    Map<String, Tensor> b = batch(12, 5, 9, 3, 6, 10);
    double want;
    try (Trainer t = Trainer.builder(graphs.padded()).intraOpThreads(1).build()) {
      want = t.trainStep(b).loss();
    }
    try (Trainer t = Trainer.builder(graphs).intraOpThreads(1).notes(notes::add).build()) {
      double got = t.trainStep(b).loss();
      assertThat(notes).singleElement().asString()
          .startsWith("padding-free training is off for this model")
          .contains("differ from those of the padded computation");
      assertThat(t.graphs().unpadMask()).isEmpty();
      // The step ran on the padded graph: the loss is the padded graph's exactly.
      assertThat(got).isEqualTo(want);
    }
  }

  static void assertClose(Tensor got, Tensor want, String what) {
    float[] g = got.toFloatArray();
    float[] w = want.toFloatArray();
    assertThat(g).as(what).hasSameSizeAs(w);
    double scale = 0;
    for (float x : w) scale = Math.max(scale, Math.abs(x));
    for (int i = 0; i < w.length; i++) {
      assertThat((double) g[i]).as("%s[%s]", what, i).isCloseTo(w[i], org.assertj.core.data.Offset.offset(1e-5 + 1e-4 * scale));
    }
  }
}
