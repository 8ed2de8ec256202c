package dev.graft.rewrite.discover;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.common.collect.ImmutableList;
import dev.graft.fixtures.PretrainedModels;
import dev.graft.fixtures.TinyModels;
import dev.graft.fixtures.TinyModels.Flavour;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.io.ModelIO;
import dev.graft.rewrite.discover.NormModule.Style;
import java.util.List;
import java.util.OptionalInt;
import java.util.stream.Collectors;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

class ModuleDiscoveryTest {
  private static Model miniLm;
  private static ImmutableList<Module> miniLmModules;

  @BeforeAll
  static void load() throws Exception {
    miniLm = ModelIO.load(PretrainedModels.miniLm());
    miniLmModules = ModuleDiscovery.discover(miniLm);
  }

  private static <T extends Module> List<T> ofType(List<Module> ms, Class<T> c) {
    return ms.stream().filter(c::isInstance).map(c::cast).collect(Collectors.toList());
  }

  private static List<String> names(List<? extends Module> ms) {
    return ms.stream().map(Module::name).collect(Collectors.toList());
  }

  @Test
  void miniLmHasSixLayersOfAttentionAndFeedForward() {
    List<AttentionModule> att = ofType(miniLmModules, AttentionModule.class);
    assertThat(names(att))
        .containsExactly(
            "layer.0.attention", "layer.1.attention", "layer.2.attention",
            "layer.3.attention", "layer.4.attention", "layer.5.attention");
    for (AttentionModule a : att) {
      int i = a.layer().getAsInt();
      // Structure named them; the exporter's node names must agree.
      assertThat(a.query().node().name()).isEqualTo("/encoder/layer." + i + "/attention/self/query/MatMul");
      assertThat(a.key().node().name()).isEqualTo("/encoder/layer." + i + "/attention/self/key/MatMul");
      assertThat(a.value().node().name()).isEqualTo("/encoder/layer." + i + "/attention/self/value/MatMul");
      assertThat(a.output().node().name()).isEqualTo("/encoder/layer." + i + "/attention/output/dense/MatMul");
      assertThat(a.softmax().name()).isEqualTo("/encoder/layer." + i + "/attention/self/Softmax");
      assertThat(a.maskAdd().name()).isEqualTo("/encoder/layer." + i + "/attention/self/Add");
      assertThat(a.numHeads()).isEqualTo(OptionalInt.of(12));
      assertThat(a.headSplit().stream().map(Node::opType).sorted())
          .containsExactly("Reshape", "Reshape", "Reshape", "Transpose", "Transpose", "Transpose");
      assertThat(a.headMerge().stream().map(Node::opType)).containsExactly("Transpose", "Reshape");
      assertThat(ModuleDiscovery.layerHint(a.scoreMatMul())).isEqualTo(OptionalInt.of(i));
    }
    List<FeedForwardModule> ffn = ofType(miniLmModules, FeedForwardModule.class);
    assertThat(ffn).hasSize(6);
    for (FeedForwardModule f : ffn) {
      int i = f.layer().getAsInt();
      assertThat(f.name()).isEqualTo("layer." + i + ".ffn");
      assertThat(f.up().node().name()).isEqualTo("/encoder/layer." + i + "/intermediate/dense/MatMul");
      assertThat(f.down().node().name()).isEqualTo("/encoder/layer." + i + "/output/dense/MatMul");
      assertThat(f.activationOps()).containsExactly("Div", "Erf", "Add", "Mul", "Mul");
    }
  }

  @Test
  void miniLmHas36LinearsWithTheirShapes() {
    List<LinearModule> linears = ofType(miniLmModules, LinearModule.class);
    assertThat(linears).hasSize(36);
    for (LinearModule l : linears) {
      String role = l.name().substring(l.name().lastIndexOf('.') + 1);
      long[] dims = l.weight().initializer().orElseThrow().dims();
      switch (role) {
        case "query", "key", "value", "output" -> assertThat(dims).containsExactly(384, 384);
        case "up" -> assertThat(dims).containsExactly(384, 1536);
        case "down" -> assertThat(dims).containsExactly(1536, 384);
        default -> throw new AssertionError("unexpected linear " + l.name());
      }
      assertThat(l.inFeatures()).isEqualTo(dims[0]);
      assertThat(l.outFeatures()).isEqualTo(dims[1]);
      assertThat(l.bias()).isPresent();
      assertThat(l.biasAdd().is("Add")).isTrue();
      // The weight hides behind an anonymous name; the name came from structure.
      assertThat(l.weight().name()).startsWith("onnx::MatMul_");
    }
    assertThat(names(linears)).contains("layer.0.attention.query", "layer.5.ffn.down", "layer.3.attention.output");
  }

  @Test
  void miniLmHas13DecomposedNorms() {
    List<NormModule> norms = ofType(miniLmModules, NormModule.class);
    assertThat(norms).hasSize(13);
    assertThat(norms).allMatch(n -> n.style() == Style.DECOMPOSED_LAYER_NORM && n.features() == 384);
    assertThat(names(norms)).contains("embeddings.norm", "layer.0.attention.norm", "layer.5.ffn.norm");
    for (NormModule n : norms) {
      String expected =
          n.name().equals("embeddings.norm")
              ? "/embeddings/LayerNorm/Mul"
              : n.name().endsWith("attention.norm")
                  ? "/encoder/layer." + n.layer().getAsInt() + "/attention/output/LayerNorm/Mul"
                  : "/encoder/layer." + n.layer().getAsInt() + "/output/LayerNorm/Mul";
      assertThat(n.scaleUse().node().name()).isEqualTo(expected);
      assertThat(n.nodes()).hasSize(9);
    }
  }

  @Test
  void miniLmEmbeddingsAndResiduals() {
    assertThat(names(ofType(miniLmModules, EmbeddingModule.class)))
        .containsExactlyInAnyOrder("embeddings.word", "embeddings.token_type", "embeddings.position");
    EmbeddingModule word =
        ofType(miniLmModules, EmbeddingModule.class).stream().filter(e -> e.name().equals("embeddings.word")).findFirst().orElseThrow();
    assertThat(word.rows()).isEqualTo(30522);
    assertThat(word.dim()).isEqualTo(384);
    List<ResidualModule> res = ofType(miniLmModules, ResidualModule.class);
    assertThat(res).hasSize(12);
    assertThat(names(res)).contains("layer.0.attention.residual", "layer.5.ffn.residual");
    for (ResidualModule r : res) {
      assertThat(r.add().name()).isEqualTo(
          r.name().contains("attention")
              ? "/encoder/layer." + r.layer().getAsInt() + "/attention/output/Add"
              : "/encoder/layer." + r.layer().getAsInt() + "/output/Add");
    }
  }

  @Test
  void miniLmModuleNamesAreUnique() {
    assertThat(names(miniLmModules)).doesNotHaveDuplicates();
  }

  @ParameterizedTest
  @EnumSource(Flavour.class)
  void bertLikeFixtureInBothFlavours(Flavour flavour) {
    ImmutableList<Module> ms = ModuleDiscovery.discover(TinyModels.bertLike(flavour));
    assertThat(names(ofType(ms, AttentionModule.class))).containsExactly("layer.0.attention", "layer.1.attention");
    assertThat(ofType(ms, AttentionModule.class)).allMatch(a -> a.numHeads().equals(OptionalInt.of(TinyModels.BERT_HEADS)));
    assertThat(ofType(ms, LinearModule.class)).hasSize(12);
    assertThat(ofType(ms, FeedForwardModule.class)).hasSize(2);
    List<NormModule> norms = ofType(ms, NormModule.class);
    assertThat(names(norms))
        .containsExactlyInAnyOrder(
            "embeddings.norm", "layer.0.attention.norm", "layer.0.ffn.norm", "layer.1.attention.norm", "layer.1.ffn.norm");
    Style style = flavour == Flavour.FUSED_OPSET17 ? Style.LAYER_NORMALIZATION : Style.DECOMPOSED_LAYER_NORM;
    assertThat(norms).allMatch(n -> n.style() == style);
    assertThat(ofType(ms, ResidualModule.class)).hasSize(4);
    assertThat(ofType(ms, EmbeddingModule.class)).hasSize(3);
  }

  @Test
  void cnnFixture() {
    ImmutableList<Module> ms = ModuleDiscovery.discover(TinyModels.cnn());
    assertThat(ms.stream().map(m -> m.name() + ":" + m.kind()))
        .containsExactly("stem.conv:CONV", "stem.conv.norm:NORM", "stage.0.block.0.conv.dw:CONV", "fc:LINEAR");
    LinearModule conv2 = ofType(ms, LinearModule.class).get(1);
    assertThat(conv2.inFeatures()).isEqualTo(4);
    assertThat(conv2.outFeatures()).isEqualTo(4);
    LinearModule fc = ofType(ms, LinearModule.class).get(2);
    assertThat(fc.inFeatures()).isEqualTo(4);
    assertThat(fc.outFeatures()).isEqualTo(10);
  }

  @Test
  void mlpFixture() {
    ImmutableList<Module> ms = ModuleDiscovery.discover(TinyModels.mlp());
    assertThat(ms.stream().map(m -> m.name() + ":" + m.kind())).containsExactly("fc1:LINEAR", "fc2:LINEAR");
    LinearModule fc2 = ofType(ms, LinearModule.class).get(1);
    assertThat(fc2.bias()).isPresent();
    assertThat(fc2.output().name()).isEqualTo("logits");
  }
}
