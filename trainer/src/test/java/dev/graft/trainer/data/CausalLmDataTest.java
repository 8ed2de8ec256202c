package dev.graft.trainer.data;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CausalLmDataTest {
  @TempDir Path dir;

  @Test
  void plainTextPacksIntoShiftedBlocks() throws Exception {
    Path f = Files.writeString(dir.resolve("a.txt"), "abcdefghij");
    List<CausalLmData.Block> blocks = CausalLmData.read(f, 4);
    // Stream "abcdefghij\n" = 11 tokens: blocks start at 0, 4 (8 + 5 > 11 is dropped).
    assertThat(blocks).hasSize(2);
    assertThat(blocks.get(0).inputIds()).containsExactly('a', 'b', 'c', 'd');
    assertThat(blocks.get(0).labels()).containsExactly('b', 'c', 'd', 'e');
    assertThat(blocks.get(1).inputIds()).containsExactly('e', 'f', 'g', 'h');
    assertThat(blocks.get(1).labels()).containsExactly('f', 'g', 'h', 'i');
    assertThat(ByteTokenizer.decode(ByteTokenizer.encode("héllo ✓"))).isEqualTo("héllo ✓");
  }

  @Test
  void promptCompletionLearnsOnlyTheCompletion() throws Exception {
    Path f = Files.writeString(dir.resolve("pc.jsonl"), "{\"prompt\": \"Q:\", \"completion\": \"ab\"}\n{\"text\": \"xy\"}\n");
    List<CausalLmData.Block> blocks = CausalLmData.read(f, 7);
    // Stream: Q : a b \n x y \n (8 tokens); learned targets: a b \n x y \n.
    assertThat(blocks).hasSize(1);
    CausalLmData.Block b = blocks.get(0);
    assertThat(b.inputIds()).containsExactly('Q', ':', 'a', 'b', '\n', 'x', 'y');
    assertThat(b.labels()).containsExactly(CausalLmData.IGNORE, 'a', 'b', '\n', 'x', 'y', '\n');
    assertThat(b.targets()).isEqualTo(6);
  }

  @Test
  void badInputGetsOneClearLine() throws Exception {
    Path missing = Files.writeString(dir.resolve("m.jsonl"), "{\"prompt\": \"a\", \"completion\": \"b\"}\n{\"prompt\": \"only\"}\n");
    assertThatThrownBy(() -> CausalLmData.read(missing, 2))
        .isInstanceOf(DataFileException.class)
        .hasMessage("m.jsonl line 2: no \"completion\" field. Every line needs {\"text\": ...} or both {\"prompt\": ..., \"completion\": ...}.");
    Path shortText = Files.writeString(dir.resolve("s.txt"), "tiny");
    assertThatThrownBy(() -> CausalLmData.read(shortText, 64))
        .isInstanceOf(DataFileException.class)
        .hasMessage("s.txt: 5 tokens (bytes), fewer than one block of 65 (--max-length 64 + 1 for the shifted labels). Use a smaller --max-length or more text.");
  }
}
