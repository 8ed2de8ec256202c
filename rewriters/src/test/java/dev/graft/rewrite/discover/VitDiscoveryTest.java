package dev.graft.rewrite.discover;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.common.collect.ImmutableList;
import dev.graft.fixtures.VisionTransformer;
import dev.graft.ir.Model;
import dev.graft.ir.analysis.Verifier;
import java.util.List;
import org.junit.jupiter.api.Test;

/** A PyTorch-style ViT, fused and decomposed LayerNorm: the names of the text encoders. */
class VitDiscoveryTest {
  @Test
  void vitBlocksAreNamedLikeTheTextEncoders() {
    for (boolean decomposed : new boolean[] {false, true}) {
      Model m = VisionTransformer.build(VisionTransformer.Config.tiny().withLayers(2).withDecomposedLayerNorm(decomposed), 1);
      Verifier.verify(m);
      ImmutableList<Module> ms = ModuleDiscovery.discover(m);
      List<String> names = ms.stream().map(x -> x.name() + ":" + x.kind()).toList();
      assertThat(names)
          .as("decomposed %s", decomposed)
          .containsExactly(
              "embeddings.patch:CONV",
              "layer.0.attention.norm:NORM",
              "layer.0.attention:ATTENTION",
              "layer.0.attention.query:LINEAR", "layer.0.attention.key:LINEAR", "layer.0.attention.value:LINEAR",
              "layer.0.attention.output:LINEAR", "layer.0.attention.residual:RESIDUAL",
              "layer.0.ffn.norm:NORM", "layer.0.ffn:FFN", "layer.0.ffn.up:LINEAR", "layer.0.ffn.down:LINEAR",
              "layer.0.ffn.residual:RESIDUAL",
              "layer.1.attention.norm:NORM",
              "layer.1.attention:ATTENTION",
              "layer.1.attention.query:LINEAR", "layer.1.attention.key:LINEAR", "layer.1.attention.value:LINEAR",
              "layer.1.attention.output:LINEAR", "layer.1.attention.residual:RESIDUAL",
              "layer.1.ffn.norm:NORM", "layer.1.ffn:FFN", "layer.1.ffn.up:LINEAR", "layer.1.ffn.down:LINEAR",
              "layer.1.ffn.residual:RESIDUAL",
              "final.norm:NORM");
      AttentionModule a = (AttentionModule) ms.stream().filter(x -> x.name().equals("layer.1.attention")).findFirst().orElseThrow();
      assertThat(a.numHeads()).hasValue(4);
    }
  }
}
