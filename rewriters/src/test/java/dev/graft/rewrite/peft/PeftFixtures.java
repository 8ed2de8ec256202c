package dev.graft.rewrite.peft;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.fixtures.PretrainedModels;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Value;
import dev.graft.ir.analysis.Verifier;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.GraftTags;
import dev.graft.rewrite.Ort;
import dev.graft.rewrite.Ort.In;
import dev.graft.rewrite.discover.Module;
import dev.graft.rewrite.discover.ModuleDiscovery;
import java.nio.file.Files;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.BeforeAll;

/** Shared test material for the PEFT passes: MiniLM loaded once, its real inputs, lookups. */
final class PeftFixtures {
  private PeftFixtures() {}

  /**
   * Base of the test classes that adapt MiniLM and compare against the original: loads the
   * model's bytes, the standard sentences and the original's last_hidden_state on them once per
   * class.
   */
  abstract static class MiniLmSetup {
    static byte[] miniLm;
    static Map<String, In> sentences;
    static float[] original;

    @BeforeAll
    static void loadMiniLm() throws Exception {
      miniLm = miniLmBytes();
      sentences = Ort.miniLmSentences();
      original = lastHidden(copy(miniLm), sentences);
    }
  }

  /** all-MiniLM-L6-v2's bytes, for fresh copies without re-reading the file. */
  static byte[] miniLmBytes() throws Exception {
    return Files.readAllBytes(PretrainedModels.miniLm());
  }

  static Model copy(byte[] bytes) {
    return WorkingModels.of(ModelIO.fromBytes(bytes, null));
  }

  /** "[CLS] hello world [SEP]" = [101, 7592, 2088, 102], one sentence, no padding. */
  static Map<String, In> helloWorld() throws Exception {
    long[] ids = Ort.miniLmIds(List.of("[CLS]", "hello", "world", "[SEP]"));
    assertThat(ids).containsExactly(101, 7592, 2088, 102);
    long[] shape = {1, 4};
    Map<String, In> in = new LinkedHashMap<>();
    in.put("input_ids", In.longs(shape, ids));
    in.put("attention_mask", In.longs(shape, 1, 1, 1, 1));
    in.put("token_type_ids", In.longs(shape, 0, 0, 0, 0));
    return in;
  }

  static float[] lastHidden(Model m, Map<String, In> in) {
    return Ort.run(m, in).get("last_hidden_state").data();
  }

  /** Verifies {@code m} and checks that its last_hidden_state equals {@code expected} on {@code in}. */
  static void assertSameOutputs(Model m, Map<String, In> in, float[] expected) {
    Verifier.verify(m);
    float[] after = lastHidden(m, in);
    assertThat(Ort.maxAbsDiff(expected, after)).isLessThanOrEqualTo(1e-5);
  }

  @SuppressWarnings("unchecked")
  static <M extends Module> M module(Model m, String name) {
    return (M)
        ModuleDiscovery.discover(m).stream()
            .filter(x -> x.name().equals(name))
            .findFirst()
            .orElseThrow(() -> new AssertionError("no module " + name));
  }

  static List<String> moduleNames(Model m) {
    return ModuleDiscovery.discover(m).stream().map(Module::name).toList();
  }

  /** The one node tagged {@code graft:<method>:<module>:<role>}. */
  static Node tagged(Model m, String method, String module, String role) {
    List<Node> hits =
        m.graph().nodes().stream()
            .filter(n -> GraftTags.method(n).filter(method::equals).isPresent())
            .filter(n -> GraftTags.module(n).filter(module::equals).isPresent())
            .filter(n -> GraftTags.role(n).filter(role::equals).isPresent())
            .toList();
    assertThat(hits).as("nodes tagged %s:%s:%s", method, module, role).hasSize(1);
    return hits.get(0);
  }

  static Tensor tensor(Model m, String name) {
    return m.graph().initializer(name).orElseThrow(() -> new AssertionError("no initializer " + name)).initializer().orElseThrow();
  }

  /** Replaces an initializer's values with Gaussian noise of standard deviation {@code std}. */
  static void randomize(Model m, String name, double std, long seed) {
    Graph g = m.graph();
    Value v = g.initializer(name).orElseThrow(() -> new AssertionError("no initializer " + name));
    Tensor t = v.initializer().orElseThrow();
    SplittableRandom r = new SplittableRandom(seed);
    float[] x = new float[Math.toIntExact(t.numElements())];
    for (int i = 0; i < x.length; i++) x[i] = (float) (r.nextGaussian() * std);
    g.setInitializer(v, DenseTensor.ofFloats(name, t.dims(), x));
  }

  static double maxAbs(float[] a) {
    double m = 0;
    for (float f : a) m = Math.max(m, Math.abs(f));
    return m;
  }
}
