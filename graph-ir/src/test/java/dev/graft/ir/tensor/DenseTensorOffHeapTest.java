package dev.graft.ir.tensor;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.graft.ir.DataType;
import java.util.List;
import org.junit.jupiter.api.Test;

/** {@link DenseTensor#offHeap}: the same tensor, its data in a direct buffer. */
class DenseTensorOffHeapTest {
  @Test
  void keepsNameTypeDimsAndValuesWithTheDataInADirectBuffer() {
    float[] w = new float[3 * 5];
    for (int i = 0; i < w.length; i++) w[i] = (float) Math.sin(i) * 1e3f;
    DenseTensor heap = DenseTensor.ofFloats("w", new long[] {3, 5}, w);
    DenseTensor off = heap.offHeap();
    assertThat(heap.rawData().isDirect()).isFalse();
    assertThat(off.rawData().isDirect()).isTrue();
    assertThat(off.name()).isEqualTo("w");
    assertThat(off.dataType()).isEqualTo(DataType.FLOAT);
    assertThat(off.dims()).containsExactly(3, 5);
    assertThat(off.toFloatArray()).containsExactly(w);
    assertThat(off.offHeap()).as("already off the heap").isSameAs(off);
  }

  @Test
  void aTypedListBecomesRawBytesOfTheSameValues() {
    DenseTensor typed =
        new DenseTensor("t", DataType.FLOAT, new long[] {4}, new DenseTensor.Storage.Floats(new float[] {1, -2, 3.5f, 0}), "doc", null);
    DenseTensor off = typed.offHeap();
    assertThat(off.storage()).isInstanceOf(DenseTensor.Storage.Raw.class);
    assertThat(off.toFloatArray()).containsExactly(1, -2, 3.5f, 0);
    assertThat(off.docString()).isEqualTo("doc");
  }

  @Test
  void refusesStrings() {
    DenseTensor s =
        new DenseTensor("s", DataType.STRING, new long[] {1}, new DenseTensor.Storage.Strings(List.of(new byte[] {65})), null, null);
    assertThatThrownBy(s::offHeap).hasMessageContaining("'s' holds strings");
  }
}
