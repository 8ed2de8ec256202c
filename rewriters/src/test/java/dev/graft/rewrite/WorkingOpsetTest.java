package dev.graft.rewrite;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.graft.fixtures.TinyModels;
import dev.graft.fixtures.TinyModels.Flavour;
import dev.graft.ir.Model;
import dev.graft.ir.analysis.OpCensus;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.convert.OpsetUpgrade;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.rewrite.peft.ClassificationHeadPass;
import dev.graft.rewrite.peft.LoraPass;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Passes speak the working opset's dialect only. A model older than that, handed to a pass without
 * going through {@link WorkingModels}, is refused in one line that names the fix, before anything
 * changes; the same model loaded through the entry point is adapted.
 */
class WorkingOpsetTest {
  private static final Targets QUERY_VALUE = Targets.glob("layer.*.attention.{query,value}");

  private static void assertRefusedUnchanged(Model m, Runnable pass, String name) {
    int nodes = m.graph().nodeCount();
    int initializers = m.graph().initializers().size();
    String census = OpCensus.of(m.graph()).toString();
    assertThatThrownBy(pass::run)
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("Pass '" + name + "'")
        .hasMessageContaining("the model is at opset 11, older than Graft's working opset " + OpsetUpgrade.WORKING_OPSET)
        .hasMessageContaining("WorkingModels.load")
        .hasMessageContaining("graft convert IN OUT --opset " + OpsetUpgrade.WORKING_OPSET);
    assertThat(m.graph().nodeCount()).isEqualTo(nodes);
    assertThat(m.graph().initializers()).hasSize(initializers);
    assertThat(OpCensus.of(m.graph()).toString()).isEqualTo(census);
  }

  @Test
  void aModulePassRefusesAnOpset11ModelGivenDirectly() {
    Model m = TinyModels.bertLike(Flavour.DECOMPOSED_OPSET11);
    LoraPass lora = new LoraPass(QUERY_VALUE, LoraPass.Config.defaults());
    assertRefusedUnchanged(m, () -> lora.run(m), "lora");
    assertRefusedUnchanged(m, () -> lora.dryRun(m), "lora");
  }

  @Test
  void thePassManagerRefusesItBeforeAnyPassRuns() {
    Model m = TinyModels.bertLike(Flavour.DECOMPOSED_OPSET11);
    // The head's first-token pooling would build no opset-dependent op; the manager refuses anyway.
    PassManager pm = new PassManager(List.of(new ClassificationHeadPass(ClassificationHeadPass.Config.of(2, ClassificationHeadPass.Pooling.FIRST))));
    assertRefusedUnchanged(m, () -> pm.run(m), "classification-head");
    assertRefusedUnchanged(m, () -> pm.dryRun(m), "classification-head");
  }

  @Test
  void theOpsetDependentBuildersRefuseIt() {
    Model m = TinyModels.bertLike(Flavour.DECOMPOSED_OPSET11);
    GraphBuilder b = GraphBuilder.on(m.graph()).atEnd();
    assertThatThrownBy(() -> Splice.unsqueeze(b, m, m.graph().inputs().get(0), 0))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("opset 11")
        .hasMessageContaining("WorkingModels.load");
  }

  @Test
  void throughTheEntryPointTheSameModelIsAdapted() {
    Model m = WorkingModels.of(TinyModels.bertLike(Flavour.DECOMPOSED_OPSET11));
    assertThat(m.defaultOpset()).hasValue(OpsetUpgrade.WORKING_OPSET);
    PassResult r = new PassManager(List.of(new LoraPass(QUERY_VALUE, LoraPass.Config.defaults()))).run(m).get(0);
    assertThat(r.changed()).isTrue();
    // Every Unsqueeze, the upgraded ones and LoRA's own, reads its axes as an input (opset 13 form).
    assertThat(m.graph().nodes().stream().filter(n -> n.is("Unsqueeze")))
        .isNotEmpty()
        .allMatch(n -> n.inputs().size() == 2 && !n.hasAttr("axes"));
  }
}
