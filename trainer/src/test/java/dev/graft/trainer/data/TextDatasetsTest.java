package dev.graft.trainer.data;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.graft.fixtures.Datasets;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TextDatasetsTest {
  @TempDir Path dir;

  private Path write(String name, String content) throws IOException {
    Path p = dir.resolve(name);
    Files.writeString(p, content, StandardCharsets.UTF_8);
    return p;
  }

  @Test
  void csvQuotingEdgeCases() throws IOException {
    Path csv =
        write(
            "data.csv",
            "\uFEFFid,text,label\r\n"
                + "1,\"Hello, world\",pos\r\n"
                + "2,\"She said \"\"no\"\"\",neg\r\n"
                + "3,\"two\nlines\",pos\n"
                + "\n"
                + "4,plain \"inner\" quote,neg\n"
                + "5,\"\",neg\n"
                + "6,\"a,\"\"b\"\",\r\nc\",\" pos \"");
    List<TextExample> examples = TextDatasets.read(csv);
    assertThat(examples)
        .containsExactly(
            new TextExample("Hello, world", "pos"),
            new TextExample("She said \"no\"", "neg"),
            new TextExample("two\nlines", "pos"),
            new TextExample("plain \"inner\" quote", "neg"),
            new TextExample("", "neg"),
            new TextExample("a,\"b\",\r\nc", "pos"));
  }

  @Test
  void csvRoundTripsRandomFieldsWrittenByAnRfc4180Writer() throws IOException {
    SplittableRandom random = new SplittableRandom(42);
    String alphabet = "ab ,\"\n\r\t'x;é";
    List<TextExample> expected = new ArrayList<>();
    StringBuilder csv = new StringBuilder("label,text\r\n");
    for (int i = 0; i < 300; i++) {
      StringBuilder text = new StringBuilder();
      int n = random.nextInt(12);
      for (int k = 0; k < n; k++) text.append(alphabet.charAt(random.nextInt(alphabet.length())));
      String label = "c" + random.nextInt(3);
      expected.add(new TextExample(text.toString(), label));
      // The writer quotes every text and doubles its quotes, as RFC 4180 section 2 allows.
      csv.append(label).append(",\"").append(text.toString().replace("\"", "\"\"")).append("\"\r\n");
    }
    assertThat(TextDatasets.read(write("random.csv", csv.toString()))).isEqualTo(expected);
  }

  @Test
  void missingColumnNamesTheColumnsAndTheOption() throws IOException {
    Path csv = write("data.csv", "sentence,label\nhi,1\n");
    assertThatThrownBy(() -> TextDatasets.read(csv))
        .isInstanceOf(DataFileException.class)
        .hasMessage(
            "data.csv line 1: no column 'text'; columns are: sentence, label. Use --text-column.");
    assertThat(TextDatasets.read(csv, "sentence", "label"))
        .containsExactly(new TextExample("hi", "1"));
    assertThatThrownBy(() -> TextDatasets.read(csv, "sentence", "y"))
        .hasMessage(
            "data.csv line 1: no column 'y'; columns are: sentence, label. Use --label-column.");
  }

  @Test
  void brokenRowsNameTheirLine() throws IOException {
    Path fields = write("f.csv", "text,label\na,1\n\"multi\nline\",0\nb,1,extra\n");
    assertThatThrownBy(() -> TextDatasets.read(fields))
        .isInstanceOf(DataFileException.class)
        .hasMessageStartingWith("f.csv line 5: 3 fields, but the header has 2 (text, label).");

    Path open = write("o.csv", "text,label\na,1\n\"never closed,0\nb,1\n");
    assertThatThrownBy(() -> TextDatasets.read(open))
        .hasMessageStartingWith("o.csv line 3: field 1 opens a quote that never closes.");

    Path junk = write("j.csv", "text,label\n\"a\"b,1\n");
    assertThatThrownBy(() -> TextDatasets.read(junk))
        .hasMessageStartingWith("j.csv line 2: unexpected 'b' after the closing quote of field 1.");

    Path noLabel = write("n.csv", "text,label\na,1\nb,\n");
    assertThatThrownBy(() -> TextDatasets.read(noLabel))
        .hasMessage("n.csv line 3: empty label in column 'label'.");

    assertThatThrownBy(() -> TextDatasets.read(write("e.csv", "")))
        .hasMessage("e.csv: is empty; expected a header row.");
    assertThatThrownBy(() -> TextDatasets.read(write("h.csv", "text,label\n")))
        .hasMessage("h.csv: has no examples.");
    assertThatThrownBy(() -> TextDatasets.read(write("d.txt", "x")))
        .hasMessageContaining("d.txt: cannot tell the format");
  }

  @Test
  void tsvTreatsQuotesAsData() throws IOException {
    Path tsv = write("d.tsv", "label\ttext\n1\t\"quoted\" start, with comma\n0\tplain\n");
    assertThat(TextDatasets.read(tsv))
        .containsExactly(
            new TextExample("\"quoted\" start, with comma", "1"), new TextExample("plain", "0"));
    Path bad = write("b.tsv", "label\ttext\n1\ta\tb\n");
    assertThatThrownBy(() -> TextDatasets.read(bad))
        .hasMessageContaining("b.tsv line 2: 3 fields")
        .hasMessageContaining("a TSV field cannot hold a tab");
  }

  @Test
  void jsonlReadsFlatObjectsAndNamesBadLines() throws IOException {
    Path jsonl =
        write(
            "d.jsonl",
            "{\"text\": \"good \\\"movie\\\"\\n\", \"label\": 1, \"extra\": [1]}\n"
                + "\n"
                + "{\"label\": \"neg\", \"text\": \"bad\"}\n"
                + "{\"text\": \"\", \"label\": null}\n");
    assertThat(TextDatasets.read(jsonl))
        .containsExactly(new TextExample("good \"movie\"\n", "1"), new TextExample("bad", "neg"));

    Path missing = write("m.jsonl", "{\"text\":\"a\",\"label\":1}\n\n{\"sentence\":\"b\",\"label\":0}\n");
    assertThatThrownBy(() -> TextDatasets.read(missing))
        .hasMessage("m.jsonl line 3: no key 'text'; keys are: sentence, label. Use --text-column.");

    Path broken = write("b.jsonl", "{\"text\":\"a\",\"label\":1}\n{\"text\": \"b\", \n");
    assertThatThrownBy(() -> TextDatasets.read(broken))
        .hasMessageStartingWith("b.jsonl line 2: not valid JSON");

    Path notObject = write("a.jsonl", "[1, 2]\n");
    assertThatThrownBy(() -> TextDatasets.read(notObject))
        .hasMessageStartingWith("a.jsonl line 1: expected a JSON object");

    Path nested = write("n.jsonl", "{\"text\": {\"a\": 1}, \"label\": 1}\n");
    assertThatThrownBy(() -> TextDatasets.read(nested))
        .hasMessageContaining("n.jsonl line 1: 'text' is {\"a\":1}, expected a string or a number.");

    Path nullLabel = write("l.jsonl", "{\"text\": \"x\", \"label\": null}\n");
    assertThatThrownBy(() -> TextDatasets.read(nullLabel))
        .hasMessage("l.jsonl line 1: the label 'label' is null or empty.");
  }

  @Test
  void realSentimentFilesReadAsThousandBalancedExamples() {
    for (String source : Datasets.SENTIMENT_SOURCES) {
      List<TextExample> examples = TextDatasets.read(Datasets.sentiment(source));
      assertThat(examples).as(source).hasSize(1000);
      assertThat(examples.stream().filter(e -> e.label().equals("1")).count()).isEqualTo(500);
      assertThat(examples.stream().filter(e -> e.label().equals("0")).count()).isEqualTo(500);
      assertThat(examples).allSatisfy(e -> assertThat(e.text()).isNotBlank());
    }
    assertThat(TextDatasets.read(Datasets.sentiment("amazon")).get(1))
        .isEqualTo(new TextExample("Good case, Excellent value.", "1"));
  }

  @Test
  void jsonArrayWithExplicitKeysAndErrors() throws IOException {
    Path json = write("a.json", "[{\"sentence\":\"x\",\"y\":\"b\"},{\"sentence\":\"z\",\"y\":\"a\"}]");
    assertThat(TextDatasets.read(json, "sentence", "y"))
        .containsExactly(new TextExample("x", "b"), new TextExample("z", "a"));
    assertThatThrownBy(() -> TextDatasets.read(json))
        .hasMessage("a.json: element 0: no key 'text'; keys are: sentence, y. Use --text-column.");
    Path object = write("o.json", "{\"text\":\"x\",\"label\":1}");
    assertThatThrownBy(() -> TextDatasets.read(object))
        .hasMessageContaining("o.json: expected a JSON array of objects")
        .hasMessageContaining(".jsonl");
  }
}
