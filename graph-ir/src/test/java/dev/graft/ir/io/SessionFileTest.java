package dev.graft.ir.io;

import static org.assertj.core.api.Assertions.assertThat;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.graft.ir.DataType;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.io.proto.Onnx;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.ExternalTensor;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link SessionFile}: the session's model points at the model's own data file (no copy of the
 * external weights), holds the tensors made in memory itself, runs in ORT with the outputs of
 * the same model run from bytes, and leaves nothing behind once closed.
 */
class SessionFileTest {
  @TempDir Path dir;

  @Test
  void pointsAtTheOriginalDataFileAndRunsInOrt() throws Exception {
    // y = (x @ W) + b; W external (saved), b added afterwards in memory.
    Graph g = new Graph("g");
    Value x = g.addInput("x", Type.tensor(DataType.FLOAT, 1, 64));
    float[] w = new float[64 * 32];
    for (int i = 0; i < w.length; i++) w[i] = (float) Math.sin(i);
    Value wv = g.addInitializer("W", DenseTensor.ofFloats("W", new long[] {64, 32}, w));
    Node mm = g.addNode(new Node("", "MatMul", List.of(x, wv), List.of("h"), List.of(), "mm"));
    g.addOutput(mm.output());
    Model m = new Model(g);
    m.setIrVersion(8L);
    m.setOpset("", 17);
    Path file = dir.resolve("m.onnx");
    ModelIO.save(m, file, SaveOptions.external(1024));
    Model loaded = ModelIO.load(file);
    Graph lg = loaded.graph();
    float[] bias = new float[32];
    for (int i = 0; i < bias.length; i++) bias[i] = i;
    Value b = lg.addInitializer("b", DenseTensor.ofFloats("b", new long[] {32}, bias));
    Value h = lg.outputs().get(0);
    Node add = lg.addNode(new Node("", "Add", List.of(h, b), List.of("y"), List.of(), "add"));
    lg.setOutput(0, add.output());
    ExternalTensor ext = (ExternalTensor) lg.initializer("W").orElseThrow().initializer().orElseThrow();

    OrtEnvironment env = OrtEnvironment.getEnvironment();
    float[] in = new float[64];
    for (int i = 0; i < in.length; i++) in[i] = i * 0.01f;
    float[] actual;
    try (SessionFile sf = SessionFile.write(loaded)) {
      assertThat(sf.path().getParent()).isEqualTo(dir.toAbsolutePath().normalize());
      Onnx.ModelProto p = Onnx.ModelProto.parseFrom(Files.readAllBytes(sf.path()));
      Onnx.TensorProto wp =
          p.getGraph().getInitializerList().stream().filter(t -> t.getName().equals("W")).findFirst().orElseThrow();
      assertThat(wp.getExternalDataList())
          .anySatisfy(e -> {
            assertThat(e.getKey()).isEqualTo("location");
            assertThat(e.getValue()).isEqualTo("m.onnx.data");
          });
      assertThat(wp.getExternalDataList())
          .anySatisfy(e -> {
            assertThat(e.getKey()).isEqualTo("offset");
            assertThat(e.getValue()).isEqualTo(Long.toString(ext.offset()));
          });
      actual = run(env.createSession(sf.path().toString()), env, in);
    }
    assertThat(ext.isMapped()).as("the session read W from its file, not through Java").isFalse();
    float[] expected = run(env.createSession(ModelIO.toBytes(loaded)), env, in);
    assertThat(actual).containsExactly(expected);
    try (Stream<Path> s = Files.list(dir)) {
      assertThat(s.map(p -> p.getFileName().toString()).sorted().toList())
          .containsExactly("m.onnx", "m.onnx.data");
    }
  }

  private static float[] run(OrtSession s, OrtEnvironment env, float[] in) throws Exception {
    try (s;
        OnnxTensor t = OnnxTensor.createTensor(env, FloatBuffer.wrap(in), new long[] {1, 64});
        OrtSession.Result r = s.run(Map.of("x", t))) {
      return ((float[][]) r.get(0).getValue())[0];
    }
  }
}
