package dev.graft.tools.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.fixtures.Datasets;
import dev.graft.fixtures.PretrainedModels;
import dev.graft.ir.Model;
import dev.graft.ir.io.ModelIO;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.trainer.data.TextDatasets;
import dev.graft.trainer.data.TextExample;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The README's Java API example (examples/api/FineTune.java) compiles against the library as a
 * user's project would see it, and runs: LoRA from examples/recipes/lora.yaml on the real
 * all-MiniLM-L6-v2, the classify task's head, one epoch on a small Yelp split.
 */
class ApiExampleTest {
  private static final Path SOURCE = Path.of("..", "examples", "api", "FineTune.java");

  @Test
  void theFifteenLineExampleCompilesAndFineTunes(@TempDir Path dir) throws Exception {
    JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
    Path classes = Files.createDirectories(dir.resolve("classes"));
    ByteArrayOutputStream diagnostics = new ByteArrayOutputStream();
    int rc = javac.run(null, null, diagnostics, "-d", classes.toString(),
        "-cp", System.getProperty("java.class.path"), SOURCE.toString());
    assertThat(rc).as(diagnostics.toString(StandardCharsets.UTF_8)).isZero();
    String body = Files.readString(SOURCE);
    long lines = body.substring(body.indexOf("public class")).lines().filter(l -> !l.isBlank()).count();
    assertThat(lines).as("lines of the class").isLessThanOrEqualTo(15);

    List<TextExample> yelp = TextDatasets.read(Datasets.sentiment("yelp"));
    Path train = dir.resolve("train.jsonl");
    Path test = dir.resolve("test.jsonl");
    TextDatasets.writeJsonl(train, yelp.subList(0, 160));
    TextDatasets.writeJsonl(test, yelp.subList(160, 200));
    Path out = dir.resolve("run");
    ByteArrayOutputStream printed = new ByteArrayOutputStream();
    PrintStream stdout = System.out;
    try (URLClassLoader loader = new URLClassLoader(new URL[] {classes.toUri().toURL()}, getClass().getClassLoader())) {
      System.setOut(new PrintStream(printed, true, StandardCharsets.UTF_8));
      loader.loadClass("FineTune").getMethod("main", String[].class).invoke(null, (Object) new String[] {
        PretrainedModels.miniLm().toString(), PretrainedModels.miniLmTokenizer().toString(),
        Path.of("..", "examples", "recipes", "lora.yaml").toString(), train.toString(), test.toString(), out.toString()});
    } finally {
      System.setOut(stdout);
    }
    String said = printed.toString(StandardCharsets.UTF_8);
    assertThat(said).matches("(?s)test accuracy 0\\.\\d{4}, 74,498 trainable parameters, saved .*tuned\\.onnx\\s*");
    Model tuned = ModelIO.load(out.resolve("tuned.onnx"));
    // LoRA r=8 on query and value (73,728) and the task's head (384 x 2 + 2).
    assertThat(TrainableRegistry.parameterCount(tuned)).isEqualTo(73_728 + 770);
    assertThat(tuned.metadata()).containsEntry("graft.task", "classify").containsKey("graft.labels");
  }
}
