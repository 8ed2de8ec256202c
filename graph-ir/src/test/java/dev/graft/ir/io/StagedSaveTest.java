package dev.graft.ir.io;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.graft.ir.DataType;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.ExternalTensor;
import dev.graft.ir.tensor.Tensor;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@link StagedSave} and {@link ModelIO#saveLinked}: tensors staged before the model is done stay
 * where they were written (the data file is each tensor once), unchanged external tensors are
 * appended, nothing is left behind on either path; a linked save shares the original data file.
 */
class StagedSaveTest {
  @TempDir Path dir;

  /** y = (x·W1)·W2 + b, with W1 and W2 of 256 KiB saved as external data in {@code src}. */
  private Model source(Path src) throws Exception {
    Files.createDirectories(src);
    Graph g = new Graph("g");
    Value x = g.addInput("x", Type.tensor(DataType.FLOAT, 1, 256));
    Value w1 = g.addInitializer("W1", floats("W1", 256, 256, 1));
    Value w2 = g.addInitializer("W2", floats("W2", 256, 256, 2));
    Value b = g.addInitializer("b", floats("b", 1, 4, 3));
    Node m1 = g.addNode(new Node("", "MatMul", List.of(x, w1), List.of("h"), List.of(), "m1"));
    Node m2 = g.addNode(new Node("", "MatMul", List.of(m1.output(), w2), List.of("h2"), List.of(), "m2"));
    Node add = g.addNode(new Node("", "Add", List.of(m2.output(), b), List.of("y"), List.of(), "add"));
    g.addOutput(add.output());
    Model m = new Model(g);
    m.setIrVersion(8L);
    m.setOpset("", 17);
    ModelIO.save(m, src.resolve("src.onnx"), SaveOptions.external(1024));
    return ModelIO.load(src.resolve("src.onnx"));
  }

  private static DenseTensor floats(String name, int rows, int cols, int seed) {
    float[] v = new float[rows * cols];
    for (int i = 0; i < v.length; i++) v[i] = (float) Math.sin(i * seed + seed);
    return DenseTensor.ofFloats(name, rows == 1 ? new long[] {cols} : new long[] {rows, cols}, v);
  }

  private static float[] data(Tensor t) {
    float[] f = new float[(int) t.numElements()];
    t.rawData().asFloatBuffer().get(f);
    return f;
  }

  @Test
  void stagedTensorsAreWrittenOnceAndTheRestIsAppended() throws Exception {
    Model m = source(dir.resolve("src"));
    Graph g = m.graph();
    Value w1 = g.initializer("W1").orElseThrow();
    DenseTensor replaced = floats("W1", 256, 256, 7);
    Path out = dir.resolve("out").resolve("m.onnx");
    Files.createDirectories(out.getParent());
    try (StagedSave save = StagedSave.begin(out, SaveOptions.external())) {
      ExternalTensor staged = save.put(replaced);
      assertThat(staged.location()).startsWith(".m.onnx.data.");
      assertThat(data(staged)).containsExactly(data(replaced));
      g.setInitializer(w1, staged);
      assertThat(out).doesNotExist();
      save.commit(m);
      // The model keeps working after the commit: the staged tensor was mapped before the move.
      assertThat(data(g.initializer("W1").orElseThrow().initializer().orElseThrow())).containsExactly(data(replaced));
    }
    try (Stream<Path> files = Files.list(out.getParent())) {
      assertThat(files.map(p -> p.getFileName().toString())).containsExactlyInAnyOrder("m.onnx", "m.onnx.data");
    }
    Model back = ModelIO.load(out);
    ExternalTensor w1Back = (ExternalTensor) back.graph().initializer("W1").orElseThrow().initializer().orElseThrow();
    ExternalTensor w2Back = (ExternalTensor) back.graph().initializer("W2").orElseThrow().initializer().orElseThrow();
    assertThat(w1Back.location()).isEqualTo("m.onnx.data");
    assertThat(w1Back.offset()).as("staged first, kept in place").isZero();
    assertThat(w2Back.offset()).isGreaterThanOrEqualTo(w1Back.length());
    assertThat(data(w1Back)).containsExactly(data(replaced));
    assertThat(data(w2Back)).containsExactly(data(floats("W2", 256, 256, 2)));
    assertThat(data(back.graph().initializer("b").orElseThrow().initializer().orElseThrow()))
        .containsExactly(data(floats("b", 1, 4, 3)));
    // Each tensor once: two 256 KiB weights (the small bias stays inline), and page alignment.
    assertThat(Files.size(out.resolveSibling("m.onnx.data"))).isEqualTo(2L * 256 * 256 * 4);
  }

  @Test
  void closingWithoutACommitLeavesNothing() throws Exception {
    Path out = dir.resolve("m.onnx");
    try (StagedSave save = StagedSave.begin(out, SaveOptions.external())) {
      save.put(floats("W", 256, 256, 1));
      assertThat(save.stagedBytes()).isEqualTo(256L * 256 * 4);
    }
    try (Stream<Path> files = Files.list(dir)) {
      assertThat(files).isEmpty();
    }
  }

  @Test
  void aLinkedSaveSharesTheOriginalDataFileInsteadOfCopyingIt() throws Exception {
    Model m = source(dir.resolve("src"));
    Graph g = m.graph();
    // A tensor made in memory beside the linked ones.
    g.setInitializer(g.initializer("b").orElseThrow(), floats("b", 1, 4, 5));
    Path out = dir.resolve("derived").resolve("d.onnx");
    Files.createDirectories(out.getParent());

    List<String> linked = ModelIO.saveLinked(m, out);

    assertThat(linked).containsExactly("src.onnx.data");
    assertThat(Files.isSameFile(out.resolveSibling("src.onnx.data"), dir.resolve("src").resolve("src.onnx.data"))).isTrue();
    Model back = ModelIO.load(out);
    ExternalTensor w2 = (ExternalTensor) back.graph().initializer("W2").orElseThrow().initializer().orElseThrow();
    assertThat(w2.location()).isEqualTo("src.onnx.data");
    assertThat(data(w2)).containsExactly(data(floats("W2", 256, 256, 2)));
    assertThat(data(back.graph().initializer("b").orElseThrow().initializer().orElseThrow()))
        .containsExactly(data(floats("b", 1, 4, 5)));
    assertThat(out.resolveSibling("d.onnx.data")).as("nothing copied").doesNotExist();
  }

  @Test
  void aSaveWithLinkedDataWritesOnlyNewTensorsAndOutlivesTheBase() throws Exception {
    Path src = dir.resolve("src");
    Model m = source(src);
    Graph g = m.graph();
    // A new tensor of 64 KiB beside the unchanged W1, W2.
    Value a = g.addInitializer("A", floats("A", 256, 64, 7));
    Node extra = g.addNode(new Node("", "MatMul", List.of(g.inputs().get(0), a), List.of("xa"), List.of(), "ma"));
    g.addOutput(extra.output());
    Path out = src.resolve("lora.onnx");

    List<String> links = ModelIO.saveWithLinkedData(m, out);

    assertThat(links).containsExactly("lora.onnx.base.data");
    Path base = src.resolve("src.onnx.data");
    assertThat(Files.isSameFile(out.resolveSibling("lora.onnx.base.data"), base)).as("a link, not a copy").isTrue();
    Model back = ModelIO.load(out);
    ExternalTensor w1 = (ExternalTensor) back.graph().initializer("W1").orElseThrow().initializer().orElseThrow();
    assertThat(w1.location()).isEqualTo("lora.onnx.base.data");
    // Lossless: every tensor reads back as it was written.
    for (String name : List.of("W1", "W2", "b", "A")) {
      assertThat(data(back.graph().initializer(name).orElseThrow().initializer().orElseThrow()))
          .as(name)
          .containsExactly(data(g.initializer(name).orElseThrow().initializer().orElseThrow()));
    }
    // New tensors are laid out as a plain save lays them out (made in memory: inline); nothing
    // of W1 and W2 is copied.
    assertThat(out.resolveSibling("lora.onnx.data")).doesNotExist();
    assertThat(Files.size(out)).as("only the new tensor is written").isLessThan(256L * 64 * 4 + 4096);

    // The base is replaced by a plain save of other weights, then deleted: the linked model keeps
    // its bytes, since every writer writes a new file and moves it (the link keeps the old one).
    Model other = source(dir.resolve("other"));
    ModelIO.save(other, src.resolve("src.onnx"), SaveOptions.external(1024));
    Files.delete(src.resolve("src.onnx"));
    Files.delete(base);
    Model again = ModelIO.load(out);
    assertThat(data(again.graph().initializer("W2").orElseThrow().initializer().orElseThrow()))
        .containsExactly(data(floats("W2", 256, 256, 2)));

    // Saving the linked model over itself (a rewrite --in-place) keeps the link and the data.
    ModelIO.saveWithLinkedData(again, out);
    Model third = ModelIO.load(out);
    assertThat(data(third.graph().initializer("W1").orElseThrow().initializer().orElseThrow()))
        .containsExactly(data(floats("W1", 256, 256, 1)));
    assertThat(data(third.graph().initializer("A").orElseThrow().initializer().orElseThrow()))
        .containsExactly(data(floats("A", 256, 64, 7)));
    try (Stream<Path> files = Files.list(src)) {
      assertThat(files.map(p -> p.getFileName().toString()))
          .as("no temporary file left behind")
          .containsExactlyInAnyOrder("lora.onnx", "lora.onnx.base.data");
    }
  }

  @Test
  void alignedBuffersHoldExactlyWhatWasAskedFromABlockBoundary() {
    for (int bytes : new int[] {0, 1, 4095, 4096, 4097, 263_168, 1 << 20}) {
      for (int k = 0; k < 8; k++) { // addresses vary from allocation to allocation
        java.nio.ByteBuffer b = DirectWrites.alignedBuffer(bytes);
        assertThat(b.capacity()).as("capacity for %s", bytes).isEqualTo(bytes);
        assertThat(b.isDirect()).isTrue();
        assertThat(b.alignmentOffset(0, DirectWrites.ALIGNMENT)).as("address of %s", bytes).isZero();
      }
    }
  }

  @ParameterizedTest(name = "buffered only: {0}")
  @ValueSource(booleans = {false, true})
  void placedTensorsWrittenAndCopiedOnAnotherThreadLandWhereTheyWerePlaced(boolean buffered) throws Exception {
    Model m = source(dir.resolve("src"));
    Graph g = m.graph();
    Value w2 = g.initializer("W2").orElseThrow();
    ExternalTensor w2Source = (ExternalTensor) w2.initializer().orElseThrow();
    Path out = dir.resolve("out.onnx");
    if (buffered) System.setProperty("graft.io.noDirect", "true");
    StagedSave opened;
    try {
      opened = StagedSave.begin(out, SaveOptions.external());
    } finally {
      System.clearProperty("graft.io.noDirect");
    }
    try (StagedSave save = opened) {
      if (buffered) assertThat(save.writesDirect()).isFalse();
      // A small tensor first, so the next ones start past an offset that is not block-aligned;
      // then one of 64 blocks and a part (the part is written buffered), computed into an
      // aligned buffer; then W2 copied from the source's file, as an export's writer thread does.
      DenseTensor small = floats("small", 1, 10, 4);
      ExternalTensor smallPlaced = save.put(small);
      DenseTensor odd = floats("odd", 257, 256, 5);
      java.nio.ByteBuffer buffer = DirectWrites.alignedBuffer((int) odd.byteSize());
      buffer.put(odd.rawData().duplicate()).flip();
      ExternalTensor oddPlaced = save.place("odd", DataType.FLOAT, odd.dims());
      ExternalTensor w2Placed = save.place(w2Source);
      java.util.concurrent.ExecutorService writer = java.util.concurrent.Executors.newSingleThreadExecutor();
      try {
        writer.submit(() -> {
              save.write(oddPlaced, buffer);
              save.copy(w2Source, w2Placed);
            })
            .get();
      } finally {
        writer.shutdown();
      }
      assertThat(oddPlaced.offset()).isGreaterThan(smallPlaced.offset());
      assertThat(data(smallPlaced)).containsExactly(data(small));
      assertThat(data(oddPlaced)).containsExactly(data(odd));
      assertThat(data(w2Placed)).containsExactly(data(w2Source));
      assertThatThrownBy(() -> save.write(w2Source, buffer))
          .hasMessageContaining("Tensor 'W2' was not placed in this staged save");
      g.setInitializer(w2, w2Placed.withName("W2"));
      save.commit(m);
    }
    Model back = ModelIO.load(out);
    ExternalTensor w2Back = (ExternalTensor) back.graph().initializer("W2").orElseThrow().initializer().orElseThrow();
    assertThat(data(w2Back)).containsExactly(data(floats("W2", 256, 256, 2)));
    assertThat(data(back.graph().initializer("W1").orElseThrow().initializer().orElseThrow()))
        .containsExactly(data(floats("W1", 256, 256, 1)));
  }

  @Test
  void aBufferIsWrittenAtOnceAndCommittedWithoutACopy() throws Exception {
    Model m = source(dir.resolve("src"));
    Graph g = m.graph();
    Path out = dir.resolve("out.onnx");
    try (StagedSave save = StagedSave.begin(out, SaveOptions.external())) {
      // A weight computed into a reused direct buffer (by ORT, in an export), then written.
      DenseTensor w1 = floats("W1", 256, 256, 9);
      java.nio.ByteBuffer scratch = java.nio.ByteBuffer.allocateDirect(256 * 256 * 4);
      scratch.put(w1.rawData().duplicate()).flip();
      ExternalTensor staged = save.put("W1", DataType.FLOAT, new long[] {256, 256}, scratch);
      assertThat(scratch.position()).as("the buffer is not consumed").isZero();
      assertThat(staged.offset()).isZero();
      assertThat(save.stagedBytes()).isEqualTo(256L * 256 * 4);
      assertThatThrownBy(() -> save.put("W9", DataType.FLOAT, new long[] {256, 255}, scratch))
          .hasMessageContaining("Tensor 'W9' of FLOAT [256, 255] takes 261120 bytes; 262144 given");
      g.setInitializer(g.initializer("W1").orElseThrow(), staged.withName("W1"));
      save.commit(m);
    }
    Model back = ModelIO.load(out);
    ExternalTensor w1 = (ExternalTensor) back.graph().initializer("W1").orElseThrow().initializer().orElseThrow();
    assertThat(w1.offset()).as("pointed at where it was written").isZero();
    assertThat(data(w1)).containsExactly(data(floats("W1", 256, 256, 9)));
    assertThat(data(back.graph().initializer("W2").orElseThrow().initializer().orElseThrow()))
        .containsExactly(data(floats("W2", 256, 256, 2)));
  }
}
