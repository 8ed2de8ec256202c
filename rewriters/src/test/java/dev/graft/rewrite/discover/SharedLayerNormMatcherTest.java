package dev.graft.rewrite.discover;

import static dev.graft.ir.DataType.FLOAT;
import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.fixtures.PretrainedModels;
import dev.graft.ir.Attr;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.convert.LayerNormFusion;
import dev.graft.ir.convert.OpsetUpgrade;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.DenseTensor;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/**
 * Module discovery and the LayerNorm fusion ({@code graft convert}) share one decomposed-LayerNorm
 * matcher: they find the same norms in real models and refuse the same near misses for the same
 * reason.
 */
class SharedLayerNormMatcherTest {

  @Test
  void discoveryAndFusionFindTheSameNormsInMiniLmAndBgeSmall() {
    for (var c : List.of(new Object[] {PretrainedModels.miniLm(), 13}, new Object[] {PretrainedModels.bgeSmall(), 25})) {
      Path path = (Path) c[0];
      Model m = ModelIO.load(path);
      Set<String> discovered = ModuleDiscovery.discover(m).stream()
          .filter(x -> x instanceof NormModule n && n.style() == NormModule.Style.DECOMPOSED_LAYER_NORM)
          .map(x -> x.nodes().get(x.nodes().size() - 1).name())
          .collect(Collectors.toSet());
      assertThat(discovered).as("%s", path).hasSize((Integer) c[1]);
      OpsetUpgrade.upgrade(m);
      LayerNormFusion.Result r = LayerNormFusion.fuse(m);
      assertThat(r.refused()).as("%s", path).isEmpty();
      // The fused node takes the name of the Add it replaces: the norm's last node.
      assertThat(Set.copyOf(r.fused())).as("%s", path).isEqualTo(discovered);
    }
  }

  @Test
  void aNearMissIsRefusedByBothForTheSameReason() {
    record Case(long axis, boolean eps, String reason) {}
    for (Case c : List.of(
        new Case(1, true, "a ReduceMean reduces axis 1, not the last axis"),
        new Case(-1, false, "no epsilon is added to the variance under the Sqrt"))) {
      Model m = decomposed(c.axis(), c.eps());
      assertThat(ModuleDiscovery.discover(m)).noneMatch(x -> x instanceof NormModule);
      List<ModuleDiscovery.Refused> refused = ModuleDiscovery.refusedNodes(m.graph()).stream()
          .filter(r -> r.kind() == ModuleKind.NORM).toList();
      assertThat(refused).singleElement().satisfies(r -> assertThat(r.reason()).contains(c.reason()));
      LayerNormFusion.Result fusion = LayerNormFusion.fuse(m);
      assertThat(fusion.fused()).isEmpty();
      assertThat(fusion.refused()).singleElement().asString().endsWith(": " + c.reason());
    }
    // The well-formed pattern is found by both.
    Model ok = decomposed(-1, true);
    assertThat(ModuleDiscovery.discover(ok)).filteredOn(x -> x instanceof NormModule).hasSize(1);
    assertThat(LayerNormFusion.fuse(ok).fused()).hasSize(1);
  }

  /** x [2, 3, 8] -> LayerNorm decomposed over {@code axis} (with or without eps) -> Relu, opset 17. */
  private static Model decomposed(long axis, boolean eps) {
    GraphBuilder b = GraphBuilder.create("g");
    float[] g = new float[8];
    float[] be = new float[8];
    for (int i = 0; i < 8; i++) {
      g[i] = 1 + 0.1f * i;
      be[i] = 0.05f * i;
    }
    Value x = b.input("x", FLOAT, 2, 3, 8);
    Value mean = b.op("ReduceMean", List.of(x), Attr.ints("axes", axis));
    Value d = b.op("Sub", x, mean);
    Value v = b.op("ReduceMean", List.of(b.op("Pow", d, b.constantNode(DenseTensor.scalar(null, 2f)))), Attr.ints("axes", axis));
    Value s = b.op("Sqrt", eps ? b.op("Add", v, b.constantNode(DenseTensor.scalar(null, 1e-5f))) : v);
    Value y = b.op("Add", b.op("Mul", b.op("Div", d, s), b.floats(new long[] {8}, g)), b.floats(new long[] {8}, be));
    Value out = b.op("Relu", y);
    out.setType(Type.tensor(FLOAT));
    b.output(out);
    return b.model(17);
  }
}
