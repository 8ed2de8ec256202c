package dev.graft.export;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.graft.ir.DataType;
import dev.graft.ir.io.SaveOptions;
import dev.graft.ir.io.StagedSave;
import dev.graft.ir.tensor.Tensor;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link DeltaFolding.MergedStore#into}: weights of mixed sizes computed into the store's reused
 * buffers (as ORT does in a streaming export) are written by its writer thread where their
 * tensors point, each with exactly its own bytes, although a buffer serves several weights.
 */
class MergedStoreTest {
  @TempDir Path dir;

  @Test
  void weightsOfMixedSizesComputedIntoReusedBuffersReadBackExactly() throws Exception {
    int[] floats = {300_000, 1_000, 700_000, 4_096, 300_000, 1_100_000, 5};
    List<Tensor> stored = new ArrayList<>();
    try (StagedSave staged = StagedSave.begin(dir.resolve("m.onnx"), SaveOptions.external());
        DeltaFolding.MergedStore store = DeltaFolding.MergedStore.into(staged)) {
      for (int k = 0; k < floats.length; k++) {
        ByteBuffer scratch = store.scratch(4L * floats[k]).orElseThrow();
        assertThat(scratch.capacity()).isEqualTo(4 * floats[k]);
        fill(scratch, k);
        stored.add(store.put("w" + k, DataType.FLOAT, new long[] {floats[k]}, scratch));
      }
      store.ready(stored.get(0));
      assertThat(values(stored.get(0))).isEqualTo(expected(floats[0], 0));
      store.flush();
      for (int k = 0; k < floats.length; k++) {
        assertThat(values(stored.get(k))).as("w%s", k).isEqualTo(expected(floats[k], k));
      }
      ByteBuffer foreign = ByteBuffer.allocateDirect(16);
      assertThatThrownBy(() -> store.put("x", DataType.FLOAT, new long[] {4}, foreign))
          .hasMessageContaining("Merged weight 'x' was not computed into a buffer of this store");
    }
  }

  private static void fill(ByteBuffer b, int k) {
    FloatBuffer f = b.duplicate().order(ByteOrder.nativeOrder()).asFloatBuffer();
    for (int i = 0; i < f.capacity(); i++) f.put(i, value(i, k));
  }

  private static float value(int i, int k) {
    return i * 0.5f + k * 1000f;
  }

  private static float[] expected(int n, int k) {
    float[] v = new float[n];
    for (int i = 0; i < n; i++) v[i] = value(i, k);
    return v;
  }

  private static float[] values(Tensor t) {
    float[] v = new float[(int) t.numElements()];
    t.rawData().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(v);
    return v;
  }
}
