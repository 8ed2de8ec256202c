package dev.graft.ir;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.ir.analysis.Verifier;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.io.SaveOptions;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.ExternalTensor;
import dev.graft.ir.tensor.Tensor;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link Model#copy()}: the copy serialises to the same bytes as the original (the serialiser is
 * the oracle), keeps every IR invariant, shares tensors without mapping external ones, and is
 * independent of the original under edits.
 */
class ModelCopyTest {
  static final Path CORPUS = Path.of("/usr/share/libonnx-testdata/data");

  @TempDir Path tmp;

  @Test
  void everyCorpusModelCopiesToTheSameBytes() throws Exception {
    assertThat(CORPUS).as("install libonnx-testdata (.ci/run does this)").isDirectory();
    List<Path> models;
    try (Stream<Path> s = Files.walk(CORPUS)) {
      models = s.filter(p -> p.getFileName().toString().equals("model.onnx")).sorted().toList();
    }
    assertThat(models).hasSizeGreaterThan(900);
    List<String> failures = new ArrayList<>();
    for (Path file : models) {
      Model m = ModelIO.load(file);
      Model c = m.copy();
      List<String> problems = Verifier.problems(c);
      if (!problems.isEmpty()) failures.add(file + ": " + problems.get(0));
      else if (!Arrays.equals(ModelIO.toBytes(c), ModelIO.toBytes(m))) failures.add(file + ": bytes differ");
    }
    assertThat(failures).isEmpty();
  }

  @Test
  void copySharesExternalTensorsUnmappedAndIsIndependent() {
    Graph g = new Graph("g");
    Value x = g.addInput("x", Type.tensor(DataType.FLOAT, 2, 4));
    float[] w = new float[4 * 3];
    for (int i = 0; i < w.length; i++) w[i] = i * 0.5f;
    Value wv = g.addInitializer("w", DenseTensor.ofFloats("w", new long[] {4, 3}, w));
    Node mm = g.addNode(new Node("", "MatMul", List.of(x, wv), List.of("y"), List.of(), "mm"));
    g.addOutput(mm.output());
    Model m = new Model(g);
    m.setIrVersion(8L);
    m.setOpset("", 17);
    m.putMetadata("k", "v");
    Path file = tmp.resolve("m.onnx");
    ModelIO.save(m, file, SaveOptions.external(0));
    Model loaded = ModelIO.load(file);
    ExternalTensor ext = (ExternalTensor) loaded.graph().initializer("w").orElseThrow().initializer().orElseThrow();

    Model copy = loaded.copy();
    Tensor copied = copy.graph().initializer("w").orElseThrow().initializer().orElseThrow();
    assertThat(copied).isSameAs(ext);
    assertThat(ext.isMapped()).isFalse();
    assertThat(Verifier.problems(copy)).isEmpty();

    // An edit of the copy: y = Relu(MatMul(x, w)); the original keeps its one node.
    Graph cg = copy.graph();
    Node cmm = cg.nodes().get(0);
    Node relu = cg.addNode(new Node("", "Relu", List.of(cmm.output()), List.of("r"), List.of(), "relu"));
    cg.setOutput(0, relu.output());
    copy.putMetadata("k", "changed");
    assertThat(loaded.graph().nodeCount()).isEqualTo(1);
    assertThat(loaded.graph().outputs().get(0).name()).isEqualTo("y");
    assertThat(loaded.metadata()).containsEntry("k", "v");
    assertThat(loaded.graph().nodes().get(0).output().uses()).isEmpty();
    assertThat(cmm.input(0)).isNotSameAs(loaded.graph().inputs().get(0));
    assertThat(cmm.input(0).uses()).hasSize(1);
    assertThat(Verifier.problems(copy)).isEmpty();
    assertThat(Verifier.problems(loaded)).isEmpty();
  }
}
