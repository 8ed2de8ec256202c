package dev.graft.trainer.generate;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.fixtures.TinyDecoders;
import dev.graft.fixtures.TinyDecoders.Config;
import dev.graft.ir.Model;
import dev.graft.ir.io.ModelIO;
import java.nio.file.Path;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Greedy decoding with ORT's KV cache (standard Concat cache, GenAI GroupQueryAttention cache)
 * gives the continuation the uncached model gives by re-running the whole sequence every step.
 */
class TextGeneratorTest {
  private static final Config C = Config.small();

  @Test
  void cachedAndUncachedGreedyDecodingAgree(@TempDir Path dir) throws Exception {
    TextGenerator.Options greedy = new TextGenerator.Options(12, 0, 1, 1);
    String uncached = generate(dir, "plain", TinyDecoders.standard(C), greedy, false);
    String cached = generate(dir, "cached", TinyDecoders.standard(C.withPast(true)), greedy, true);
    String genAi = generate(dir, "genai", TinyDecoders.genAi(C, false), greedy, true);
    assertThat(uncached.getBytes(java.nio.charset.StandardCharsets.ISO_8859_1)).isNotEmpty();
    assertThat(cached).isEqualTo(uncached);
    assertThat(genAi).isEqualTo(uncached);
  }

  @Test
  void topPKeepsTheSmallestNucleus() {
    float[] logits = new float[256];
    logits[7] = 10; // p(7) ~ 0.99...
    logits[9] = 5;
    SplittableRandom r = new SplittableRandom(3);
    for (int i = 0; i < 50; i++) {
      assertThat(TextGenerator.pick(logits, new TextGenerator.Options(1, 0.5, 1, 0), r)).isEqualTo(7);
    }
    // A high temperature flattens the distribution: the full nucleus then covers many tokens.
    boolean other = false;
    for (int i = 0; i < 50; i++) other |= TextGenerator.pick(logits, new TextGenerator.Options(1, 1.0, 100, 0), r) != 7;
    assertThat(other).isTrue();
  }

  @Test
  void generatingPastTheModelsPositionTablesSaysHowManyTokensFit(@TempDir Path dir) throws Exception {
    // Config.small() has rotary tables of 128 positions: a 15-byte prompt fits 114 new tokens (the last one is picked at position 127).
    Path p = dir.resolve("cached.onnx");
    ModelIO.save(TinyDecoders.standard(C.withPast(true)), p);
    try (TextGenerator g = new TextGenerator(p, 1)) {
      org.assertj.core.api.Assertions.assertThatThrownBy(
              () -> g.generate("Fellow-Citizens", new TextGenerator.Options(200, 0, 1, 1)))
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessageStartingWith("The model could not run at position 128")
          .hasMessageContaining("generate at most 114 new tokens (--max-new-tokens 114)");
      assertThat(g.generate("Fellow-Citizens", new TextGenerator.Options(114, 0, 1, 1))).isNotNull();
    }
  }

  private static String generate(Path dir, String name, Model m, TextGenerator.Options o, boolean cached) throws Exception {
    Path p = dir.resolve(name + ".onnx");
    ModelIO.save(m, p);
    try (TextGenerator g = new TextGenerator(p, 1)) {
      assertThat(g.cached()).isEqualTo(cached);
      return g.generate("Fellow-Citizens", o);
    }
  }
}
