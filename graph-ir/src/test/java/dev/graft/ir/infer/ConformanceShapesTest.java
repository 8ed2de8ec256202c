package dev.graft.ir.infer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.graft.ir.Model;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.io.ModelIO;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * The ONNX conformance node tests as an oracle: each model declares its outputs' types (checked
 * by ONNX's own generator against the reference outputs). Forget them, infer, and compare every
 * output that inference types, for every op the rules know.
 */
class ConformanceShapesTest {
  static final Path NODE_TESTS = Path.of("/usr/share/libonnx-testdata/data/node");

  @Test
  void inferredOutputsMatchDeclaredOnesAcrossTheNodeTests() throws IOException {
    assumeTrue(Files.isDirectory(NODE_TESTS), "ONNX conformance data not installed");
    List<String> problems = new ArrayList<>();
    int compared = 0;
    int models = 0;
    List<Path> dirs;
    try (Stream<Path> s = Files.list(NODE_TESTS)) {
      dirs = s.filter(d -> Files.exists(d.resolve("model.onnx"))).sorted().toList();
    }
    for (Path dir : dirs) {
      Model m;
      try {
        m = ModelIO.load(dir.resolve("model.onnx"));
      } catch (RuntimeException e) {
        continue; // The loader's own tests cover unreadable models.
      }
      if (m.graph().nodes().stream().anyMatch(n -> !ShapeRules.RULES.containsKey(n.opType()) || !n.domain().isEmpty())) {
        continue;
      }
      models++;
      List<Type> declared = new ArrayList<>();
      for (Value out : m.graph().outputs()) {
        declared.add(out.type().orElse(null));
        out.setType(null);
      }
      try {
        ShapeInference.infer(m);
      } catch (RuntimeException e) {
        problems.add(dir.getFileName() + ": " + e.getMessage());
        continue;
      }
      for (int i = 0; i < declared.size(); i++) {
        Value out = m.graph().outputs().get(i);
        if (!(declared.get(i) instanceof Type.TensorType d) || d.shape().isEmpty()) continue;
        if (out.shape().isEmpty()) continue;
        compared++;
        boolean sameElem = out.dataType().isEmpty() || out.dataType().get() == d.elementType();
        if (!sameElem || !compatible(out.shape().get(), d.shape().get())) {
          problems.add(dir.getFileName() + " output " + out.name() + ": inferred " + out.type().orElse(null) + ", declared " + d);
        }
      }
    }
    System.out.printf("ConformanceShapesTest: %s models, %s outputs compared%n", models, compared);
    assertThat(problems).isEmpty();
    assertThat(compared).isGreaterThan(300);
  }

  /** Same rank, and every dim that both sides fix is equal. */
  private static boolean compatible(dev.graft.ir.Shape a, dev.graft.ir.Shape b) {
    if (a.rank() != b.rank()) return false;
    for (int i = 0; i < a.rank(); i++) {
      if (a.dim(i).isFixed() && b.dim(i).isFixed() && a.dim(i).value() != b.dim(i).value()) return false;
    }
    return true;
  }
}
