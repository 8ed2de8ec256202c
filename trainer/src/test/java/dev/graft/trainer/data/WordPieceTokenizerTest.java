package dev.graft.trainer.data;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.graft.fixtures.Datasets;
import dev.graft.fixtures.PretrainedModels;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class WordPieceTokenizerTest {
  private static Path tokenizerJson;
  private static WordPieceTokenizer tokenizer;
  private static ReferenceWordPiece reference;

  @BeforeAll
  static void load() throws IOException {
    tokenizerJson = PretrainedModels.miniLmTokenizer();
    tokenizer = WordPieceTokenizer.load(tokenizerJson, 128);
    reference = new ReferenceWordPiece(tokenizerJson);
  }

  @AfterAll
  static void close() {
    tokenizer.close();
  }

  @Test
  void knownSentencesGiveBertIds() {
    // bert-base-uncased ids, as printed by HuggingFace's tokenizer for these words.
    assertThat(tokenizer.encode("Hello, world!").inputIds())
        .containsExactly(101, 7592, 1010, 2088, 999, 102);
    assertThat(tokenizer.tokens("Tokenization isn't hard."))
        .containsExactly("[CLS]", "token", "##ization", "isn", "'", "t", "hard", ".", "[SEP]");
    assertThat(tokenizer.padId()).isZero();
  }

  @Test
  void agreesWithAnIndependentGreedyWordPiece() {
    List<String> sentences =
        List.of(
            "The quick brown fox jumps over the lazy dog.",
            "I'd give it 10/10 -- unbelievably good!!!",
            "Tied to charger for conversations lasting more than 45 minutes.MAJOR PROBLEMS!!",
            "  spaces\tand\ttabs   ",
            "xylophonist antidisestablishmentarianism zzzzqqqq");
    for (String s : sentences) {
      assertThat(tokenizer.encode(s).inputIds()).as(s).containsExactly(reference.encode(s, 128));
    }
  }

  @Test
  void agreesWithTheReferenceOnEveryAsciiSentimentSentence() {
    int compared = 0;
    for (String source : Datasets.SENTIMENT_SOURCES) {
      List<TextExample> examples = TextDatasets.read(Datasets.sentiment(source));
      LabelMap labels = LabelMap.ofExamples(examples);
      List<EncodedExample> encoded = tokenizer.encodeAll(examples, labels);
      for (int i = 0; i < examples.size(); i++) {
        String text = examples.get(i).text();
        if (!ReferenceWordPiece.isAscii(text)) continue;
        assertThat(encoded.get(i).inputIds()).as(text).containsExactly(reference.encode(text, 128));
        assertThat(encoded.get(i).label()).isEqualTo(labels.id(examples.get(i).label()));
        compared++;
      }
    }
    assertThat(compared).isGreaterThan(2900);
  }

  @Test
  void truncatesToMaxLengthKeepingSepAndDoesNotPad() {
    String longText = "word ".repeat(50);
    try (WordPieceTokenizer short16 = WordPieceTokenizer.load(tokenizerJson, 16)) {
      EncodedExample e = short16.encode(longText);
      assertThat(e.inputIds()).hasSize(16).containsExactly(reference.encode(longText, 16));
      assertThat(e.inputIds()[15]).isEqualTo(102);
      // MiniLM's tokenizer.json asks for fixed padding to 128; it is switched off.
      assertThat(short16.encode("hi").inputIds()).containsExactly(101, 7632, 102);
      assertThat(short16.encode("hi").tokenTypeIds()).containsExactly(0, 0, 0);
    }
  }

  @Test
  void badFilesSayWhatToPass(@TempDir Path dir) throws IOException {
    assertThatThrownBy(() -> WordPieceTokenizer.load(dir.resolve("none.json"), 128))
        .hasMessageContaining("does not exist. Pass the model's tokenizer.json.");
    Path vocab = Files.writeString(dir.resolve("vocab.txt"), "[PAD]\n[UNK]\n");
    assertThatThrownBy(() -> WordPieceTokenizer.load(vocab, 128))
        .hasMessageContaining("vocab.txt");
  }
}
