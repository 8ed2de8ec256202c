package dev.graft.trainer.task;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.graft.fixtures.PretrainedModels;
import dev.graft.ir.Model;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.ir.tensor.Tensor;
import dev.graft.trainer.run.RunConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code graft train --bucket-by-length} reaches the task's data loader: with the option a
 * classification task's epoch pads far fewer tokens than without, and still holds every training
 * example once.
 */
class LengthBucketWiringTest {
  /** 200 labelled texts of 1 to 40 words. */
  private static Path unevenCsv(Path dir) throws Exception {
    Random rnd = new Random(11);
    String[] words = {"good", "bad", "movie", "plot", "actor", "slow", "great", "film", "story", "end"};
    StringBuilder csv = new StringBuilder("text,label\n");
    for (int i = 0; i < 200; i++) {
      int n = 1 + rnd.nextInt(40);
      StringBuilder t = new StringBuilder("item" + i);
      for (int k = 0; k < n; k++) t.append(' ').append(words[rnd.nextInt(words.length)]);
      csv.append(t).append(',').append(i % 2 == 0 ? "pos" : "neg").append('\n');
    }
    Path f = dir.resolve("uneven.csv");
    Files.writeString(f, csv);
    return f;
  }

  /** Padded token positions over one epoch, and the training examples seen (by their first token). */
  private record Epoch(long padded, int examples) {}

  private static Epoch epoch(Path csv, Path dir, int lengthBuckets) throws Exception {
    Path run = Files.createDirectories(dir.resolve("run" + lengthBuckets));
    RunConfig config =
        RunConfig.builder(List.of(csv), PretrainedModels.miniLmTokenizer(), run)
            .batchSize(8).maxLength(64).lengthBuckets(lengthBuckets).build();
    assertThat(config.data().lengthBuckets()).isEqualTo(lengthBuckets);
    ClassifyTask task = new ClassifyTask(HeadKind.MEAN, 42);
    task.load(config.data());
    Model model = WorkingModels.load(PretrainedModels.miniLm());
    task.head(model).orElseThrow().pass().run(model);
    task.objective(model);
    long padded = 0;
    int examples = 0;
    Set<String> rows = new HashSet<>();
    for (TaskBatch b : task.trainBatches(3)) {
      Tensor mask = b.feeds().get("attention_mask");
      long[] m = mask.toLongArray();
      long[] ids = b.feeds().get("input_ids").toLongArray();
      int seq = (int) mask.dims()[1];
      for (int r = 0; r < b.size(); r++) {
        for (int s = 0; s < seq; s++) if (m[r * seq + s] == 0) padded++;
        List<Long> row = new ArrayList<>();
        for (int s = 0; s < seq; s++) if (m[r * seq + s] == 1) row.add(ids[r * seq + s]);
        rows.add(row.toString());
      }
      examples += b.size();
    }
    assertThat(rows).hasSize(examples); // every example once (each text starts "itemN")
    return new Epoch(padded, examples);
  }

  @Test
  void bucketedEpochsPadFarLessAndKeepEveryExample(@TempDir Path dir) throws Exception {
    Path csv = unevenCsv(dir);
    Epoch plain = epoch(csv, dir, 0);
    Epoch bucketed = epoch(csv, dir, 5);
    // 200 examples less the default 20% test split.
    assertThat(bucketed.examples()).isEqualTo(plain.examples()).isEqualTo(160);
    assertThat(bucketed.padded()).isLessThan(plain.padded() / 3);
  }

  @Test
  void aNegativePoolIsRefused(@TempDir Path dir) {
    assertThatThrownBy(() -> RunConfig.builder(List.of(dir.resolve("a.csv")), dir.resolve("t.json"), dir).lengthBuckets(-1).build())
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("length-bucket pool");
  }
}
