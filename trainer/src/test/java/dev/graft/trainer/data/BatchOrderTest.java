package dev.graft.trainer.data;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class BatchOrderTest {
  private static List<EncodedExample> examples() {
    List<EncodedExample> out = new ArrayList<>();
    for (int i = 0; i < 100; i++) {
      int len = 3 + (i * 37) % 50;
      long[] ids = new long[len];
      ids[0] = 101;
      for (int k = 1; k < len - 1; k++) ids[k] = 1000 + i;
      ids[len - 1] = 102;
      out.add(new EncodedExample(ids, new long[len], i % 2));
    }
    return out;
  }

  private static List<String> rows(List<Batch> batches) {
    List<String> r = new ArrayList<>();
    for (Batch b : batches) r.add(java.util.Arrays.toString(b.inputIds()));
    return r;
  }

  @Test
  void zeroIsShuffledBatchesAndAPoolIsLengthBuckets() {
    Batcher batcher = new Batcher(8, 64, 0);
    assertThat(rows(BatchOrder.of(batcher, 0).epoch(examples(), 5))).isEqualTo(rows(batcher.shuffled(examples(), 5)));
    assertThat(rows(BatchOrder.of(batcher, 4).epoch(examples(), 5)))
        .isEqualTo(rows(new LengthBuckets(batcher, 4).shuffled(examples(), 5)))
        .isNotEqualTo(rows(batcher.shuffled(examples(), 5)));
    assertThatThrownBy(() -> BatchOrder.of(batcher, -2)).hasMessageContaining("got -2");
  }
}
