package dev.graft.trainer.data;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import org.junit.jupiter.api.Test;

class LabelMapTest {
  @Test
  void integerLabelsSortNumerically() {
    LabelMap map = LabelMap.of(List.of("10", "2", "1", "2", "-3", "10"));
    assertThat(map.labels()).containsExactly("-3", "1", "2", "10");
    assertThat(map.id("10")).isEqualTo(3);
    assertThat(map.label(0)).isEqualTo("-3");
  }

  @Test
  void otherLabelsSortLexicographicallyWhateverTheInputOrder() {
    List<String> labels = List.of("pos", "neg", "neutral", "10", "Neg");
    LabelMap a = LabelMap.of(labels);
    LabelMap b = LabelMap.of(List.of("neutral", "Neg", "10", "pos", "neg", "pos"));
    assertThat(a.labels()).containsExactly("10", "Neg", "neg", "neutral", "pos");
    assertThat(b).isEqualTo(a);
    assertThat(a.size()).isEqualTo(5);
  }

  @Test
  void encodeAndDecodeKeepIdsAndSurviveAwkwardCharacters() {
    LabelMap map = LabelMap.of(List.of("b\"q", "a,b", "ü", "x\ny"));
    String encoded = map.encode();
    assertThat(encoded).startsWith("[").endsWith("]");
    LabelMap back = LabelMap.decode(encoded);
    assertThat(back.labels()).isEqualTo(map.labels());
    assertThat(LabelMap.decode("[\"neg\",\"pos\"]").id("pos")).isEqualTo(1);
    // decode keeps the stored order even when it is not the sorted one.
    assertThat(LabelMap.decode("[\"pos\",\"neg\"]").id("pos")).isEqualTo(0);
  }

  @Test
  void errorsSayWhatIsWrong() {
    LabelMap map = LabelMap.of(List.of("neg", "pos"));
    assertThatThrownBy(() -> map.id("neutral"))
        .hasMessageStartingWith("Unknown label 'neutral'; the model knows [neg, pos].");
    assertThatThrownBy(() -> map.label(2)).hasMessage("class id 2 is not in [0, 2)");
    assertThatThrownBy(() -> LabelMap.decode("neg,pos")).hasMessageContaining("is not JSON");
    assertThatThrownBy(() -> LabelMap.decode("[\"a\",\"a\"]")).hasMessageContaining("repeats");
    assertThatThrownBy(() -> LabelMap.decode("[1]")).hasMessageContaining("not a string");
    assertThatThrownBy(() -> LabelMap.of(List.of())).hasMessageContaining("empty");
  }
}
