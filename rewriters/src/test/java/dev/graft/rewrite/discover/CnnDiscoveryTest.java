package dev.graft.rewrite.discover;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.common.collect.ImmutableList;
import dev.graft.fixtures.PretrainedCnn;
import dev.graft.ir.Model;
import dev.graft.ir.io.ModelIO;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Structural names for the convolutions of the real PaddleOCR MobileNetV3 (Constant-node weights). */
class CnnDiscoveryTest {
  @Test
  void mobileNetV3BlocksStagesAndSqueezeExcitation() {
    Model m = ModelIO.load(PretrainedCnn.mobileNetV3());
    ImmutableList<Module> ms = ModuleDiscovery.discover(m);
    List<String> convs = ms.stream().filter(x -> x.kind() == ModuleKind.CONV).map(Module::name).toList();
    assertThat(convs).hasSize(53).doesNotHaveDuplicates();
    // Every conv is named by structure; none falls back to conv.N.
    assertThat(convs).allMatch(n -> n.equals("stem.conv") || n.equals("last.conv") || n.startsWith("stage."));
    assertThat(convs.subList(0, 6))
        .containsExactly(
            "stem.conv", "stage.0.block.0.conv.expand", "stage.0.block.0.conv.dw",
            "stage.0.block.0.se.reduce", "stage.0.block.0.se.expand", "stage.0.block.0.conv.pw");
    // 11 inverted-residual blocks (MobileNetV3-small), each ending in a pointwise projection.
    assertThat(convs.stream().filter(n -> n.endsWith(".conv.pw"))).hasSize(11);
    assertThat(convs.stream().filter(n -> n.endsWith(".conv.dw"))).hasSize(11);
    assertThat(convs.stream().filter(n -> n.endsWith(".se.reduce"))).hasSize(9);
    // Depthwise convs are what their name says: one group per channel.
    for (Module x : ms) {
      if (x instanceof LinearModule l && l.name().endsWith(".dw")) {
        assertThat(l.node().attrLong("group", 1)).isEqualTo(l.outFeatures());
      }
    }
    List<String> norms = ms.stream().filter(x -> x.kind() == ModuleKind.NORM).map(Module::name).toList();
    assertThat(norms).hasSize(35).allMatch(n -> n.endsWith(".norm"));
    assertThat(norms).contains("stage.2.block.1.conv.pw.norm", "last.conv.norm");
    List<String> residuals = ms.stream().filter(x -> x.kind() == ModuleKind.RESIDUAL).map(Module::name).toList();
    assertThat(residuals).hasSize(7).allMatch(n -> n.matches("stage\\.\\d\\.block\\.\\d\\.residual"));
    // A stride-2 block opens a stage: the pretrained net has four stages after the stem.
    assertThat(convs).anyMatch(n -> n.startsWith("stage.3.")).noneMatch(n -> n.startsWith("stage.4."));
  }
}
