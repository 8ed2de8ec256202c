package dev.graft.tools.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class JsonTest {

  @Test
  void everyControlCharacterQuoteAndBackslashRoundTrip() {
    StringBuilder all = new StringBuilder("quote \" backslash \\ slash / ");
    for (char c = 0; c < 0x20; c++) all.append(c);
    all.append("\u007f é 中 \uD83D\uDE00 \u2028\u2029 end");
    String text = all.toString();

    String json = Json.write(text);

    assertThat(MiniJson.parse(json)).isEqualTo(text);
    // No raw control character and no raw line separator reaches the output.
    assertThat(json.chars().filter(c -> c < 0x20 || c == 0x2028 || c == 0x2029)).isEmpty();
    assertThat(json).contains("\\n", "\\t", "\\u0000", "\\u001f", "\\\"", "\\\\", "\\u2028");
  }

  @Test
  void loneSurrogatesAreEscapedNotDropped() {
    String text = "a\uD800b\uDC00c";
    String json = Json.write(text);
    assertThat(json).isEqualTo("\"a\\ud800b\\udc00c\"");
    assertThat(MiniJson.parse(json)).isEqualTo(text);
  }

  @Test
  void nestedStructuresKeepOrderAndTypes() {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("z", 1);
    m.put("a", Arrays.asList(1L, "two", null, true, false, 2.5));
    m.put("", Map.of("k", List.of()));
    m.put("big", Long.MAX_VALUE);

    String json = Json.write(m);

    assertThat(json)
        .isEqualTo("{\"z\":1,\"a\":[1,\"two\",null,true,false,2.5],\"\":{\"k\":[]},\"big\":"
            + Long.MAX_VALUE + "}");
    Object back = MiniJson.parse(json);
    assertThat(back).isInstanceOf(Map.class);
    assertThat(List.copyOf(((Map<?, ?>) back).keySet())).isEqualTo(List.of("z", "a", "", "big"));
    assertThat(((Map<?, ?>) back).get("big")).isEqualTo(Long.MAX_VALUE);
  }

  @Test
  void refusesWhatJsonCannotSay() {
    assertThatThrownBy(() -> Json.write(Double.NaN)).hasMessageContaining("NaN");
    assertThatThrownBy(() -> Json.write(Map.of(1, 2))).hasMessageContaining("keys must be strings");
    assertThatThrownBy(() -> Json.write(new Object())).hasMessageContaining("Cannot write");
  }
}
