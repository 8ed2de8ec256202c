package dev.graft.export;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.graft.ir.Constants;
import dev.graft.ir.Model;
import dev.graft.ir.analysis.OpCensus;
import dev.graft.ir.io.ModelIO;
import dev.graft.rewrite.PassManager;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.discover.LinearModule;
import dev.graft.rewrite.discover.ModuleDiscovery;
import dev.graft.rewrite.peft.LayerNormAffinePass;
import dev.graft.rewrite.peft.TaylorChannelPass;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Taylor channel deltas fold into their linear weights: only the chosen columns change. */
class TaylorFoldTest {
  @TempDir Path dir;

  @Test
  void channelDeltasFoldIntoTheirColumnsAndTheCensusIsTheBase() {
    TunedMiniLm miniLm = new TunedMiniLm();
    Model base = miniLm.base();
    Model tuned = miniLm.base();
    List<Integer> down = List.of(7, 0, 383, 100);
    List<Integer> up = List.of(3, 1500);
    new PassManager(
            List.of(
                new LayerNormAffinePass(Targets.glob("layer.1.**")),
                new TaylorChannelPass(TaylorChannelPass.Config.of(Map.of("layer.1.ffn.down", down, "layer.4.ffn.up", up)))))
        .run(tuned);
    TunedMiniLm.randomise(tuned, 41);

    ExportReport r = MergedExport.write(tuned, dir.resolve("m.onnx"), ExportOptions.defaults());
    Model merged = ModelIO.load(dir.resolve("m.onnx"));

    assertThat(r.verification().maxAbsDiff()).isLessThanOrEqualTo(1e-4);
    assertThat(r.fold().folded()).contains("taylor-channels layer.1.ffn.down", "taylor-channels layer.4.ffn.up");
    assertThat(r.fold().kept()).isEmpty();
    assertThat(OpCensus.of(merged.graph())).isEqualTo(OpCensus.of(base.graph()));
    assertThat(TrainableRegistry.read(merged)).isEmpty();

    // The closed form: column c_j of W gains column j of dW; every other column is the base's.
    checkColumns(base, merged, tuned, "layer.1.ffn.down", down);
    checkColumns(base, merged, tuned, "layer.4.ffn.up", up);
  }

  private static void checkColumns(Model base, Model merged, Model tuned, String module, List<Integer> channels) {
    float[] w0 = weight(base, module);
    float[] w1 = weight(merged, module);
    float[] dw = tuned.graph().initializer(module + ".taylor_dW").orElseThrow().initializer().orElseThrow().toFloatArray();
    LinearModule l = linear(base, module);
    int in = Math.toIntExact(l.inFeatures());
    int out = Math.toIntExact(l.outFeatures());
    int k = channels.size();
    for (int i = 0; i < in; i++) {
      for (int c = 0; c < out; c++) {
        int j = channels.indexOf(c);
        float expected = j < 0 ? w0[i * out + c] : w0[i * out + c] + dw[i * k + j];
        assertThat(w1[i * out + c]).as("%s W[%s, %s]", module, i, c).isEqualTo(expected, within(1e-6f));
      }
    }
    double largest = 0;
    for (float v : dw) largest = Math.max(largest, Math.abs(v));
    assertThat(largest).as("the delta is really there").isGreaterThan(1e-3);
  }

  private static float[] weight(Model m, String module) {
    return Constants.valueOf(linear(m, module).weight()).orElseThrow().toFloatArray();
  }

  private static LinearModule linear(Model m, String module) {
    return ModuleDiscovery.discover(m).stream()
        .filter(x -> x instanceof LinearModule && x.name().equals(module))
        .map(x -> (LinearModule) x)
        .findFirst()
        .orElseThrow();
  }
}
