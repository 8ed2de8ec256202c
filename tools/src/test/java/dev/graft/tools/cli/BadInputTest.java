package dev.graft.tools.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Bad input gives one line on stderr that says what is wrong, and exit status 1 (2 for a
 * command line that does not parse); never a stack trace.
 */
class BadInputTest {
  @TempDir Path dir;

  @Test
  void notAnOnnxFile() throws Exception {
    Path text = dir.resolve("notes.onnx");
    Files.writeString(text, "hello, this is not a model\n", StandardCharsets.UTF_8);

    CliRun run = CliRun.of("inspect", text.toString());

    assertOneLineFailure(run, 1);
    assertThat(run.err()).contains(text.toString()).contains("not a valid ONNX model");
  }

  @Test
  void truncatedFile() throws Exception {
    byte[] whole = TinyProtoModels.inline().toByteArray();
    Path cut = dir.resolve("cut.onnx");
    // Cut inside W's raw data, so the graph message ends before its declared length.
    Files.write(cut, Arrays.copyOf(whole, whole.length - 30));

    CliRun inspect = CliRun.of("inspect", cut.toString());
    CliRun convert = CliRun.of("convert", cut.toString(), dir.resolve("out.onnx").toString());

    assertOneLineFailure(inspect, 1);
    assertOneLineFailure(convert, 1);
    assertThat(inspect.err()).contains(cut.toString());
    assertThat(Files.exists(dir.resolve("out.onnx"))).isFalse();
  }

  @Test
  void missingFile() {
    Path missing = dir.resolve("nowhere.onnx");

    CliRun inspect = CliRun.of("inspect", missing.toString());
    CliRun convert = CliRun.of("convert", missing.toString(), dir.resolve("o.onnx").toString());

    assertOneLineFailure(inspect, 1);
    assertOneLineFailure(convert, 1);
    assertThat(inspect.err()).contains(missing.toString()).contains("no such file");
  }

  @Test
  void aFolderInsteadOfAModel() {
    CliRun run = CliRun.of("inspect", dir.toString());

    assertOneLineFailure(run, 1);
    assertThat(run.err()).contains("is a folder");
  }

  @Test
  void missingExternalDataFile() {
    Path model = TinyProtoModels.write(TinyProtoModels.external("weights.bin"), dir.resolve("m.onnx"));

    CliRun inspect = CliRun.of("inspect", model.toString());
    CliRun convert =
        CliRun.of("convert", model.toString(), dir.resolve("copy.onnx").toString(), "--inline");

    assertOneLineFailure(inspect, 1);
    assertOneLineFailure(convert, 1);
    for (CliRun run : new CliRun[] {inspect, convert}) {
      assertThat(run.err()).contains("'" + TinyProtoModels.WEIGHT + "'").contains("weights.bin");
    }
  }

  @Test
  void truncatedExternalDataFile() throws Exception {
    Files.write(dir.resolve("w.bin"), Arrays.copyOf(TinyProtoModels.weightBytes(), 20));
    Path model = TinyProtoModels.write(TinyProtoModels.external("w.bin"), dir.resolve("m.onnx"));

    CliRun run = CliRun.of("inspect", model.toString());

    assertOneLineFailure(run, 1);
    assertThat(run.err()).contains("'" + TinyProtoModels.WEIGHT + "'").contains("truncated");
  }

  @Test
  void externalDataThatEscapesTheModelsFolder() throws Exception {
    // The secret exists and is long enough: the only thing wrong is where it is.
    Files.write(dir.resolve("secret.bin"), TinyProtoModels.weightBytes());
    Path model =
        TinyProtoModels.write(
            TinyProtoModels.external("../secret.bin"), dir.resolve("models").resolve("m.onnx"));

    CliRun inspect = CliRun.of("inspect", model.toString());
    CliRun convert =
        CliRun.of("convert", model.toString(), dir.resolve("stolen.onnx").toString(), "--inline");

    assertOneLineFailure(inspect, 1);
    assertOneLineFailure(convert, 1);
    for (CliRun run : new CliRun[] {inspect, convert}) {
      assertThat(run.err())
          .contains("'" + TinyProtoModels.WEIGHT + "'")
          .contains("../secret.bin")
          .contains("escape");
    }
    assertThat(Files.exists(dir.resolve("stolen.onnx"))).isFalse();
  }

  @Test
  void outputFolderDoesNotExist() {
    Path model = TinyProtoModels.write(TinyProtoModels.inline(), dir.resolve("m.onnx"));
    Path out = dir.resolve("no").resolve("such").resolve("out.onnx");

    CliRun run = CliRun.of("convert", model.toString(), out.toString());

    assertOneLineFailure(run, 1);
    assertThat(run.err()).contains("does not exist");
  }

  @Test
  void outputFolderIsAFile() throws Exception {
    Path model = TinyProtoModels.write(TinyProtoModels.inline(), dir.resolve("m.onnx"));
    Path file = Files.writeString(dir.resolve("plain.txt"), "x");

    CliRun run = CliRun.of("convert", model.toString(), file.resolve("out.onnx").toString());

    assertOneLineFailure(run, 1);
    assertThat(run.err()).contains("is a file, not a folder");
  }

  @Test
  void outputIsAFolder() {
    Path model = TinyProtoModels.write(TinyProtoModels.inline(), dir.resolve("m.onnx"));

    CliRun run = CliRun.of("convert", model.toString(), dir.toString());

    assertOneLineFailure(run, 1);
    assertThat(run.err()).contains("is a folder");
  }

  @Test
  void usageErrorsExitWithTwo() {
    assertOneLineFailure(CliRun.of("convert", "only-one.onnx"), 2);
    assertOneLineFailure(CliRun.of("convert", "a.onnx", "b.onnx", "--inline", "--external-data"), 2);
    assertOneLineFailure(CliRun.of("convert", "a.onnx", "b.onnx", "--threshold", "10"), 2);
    assertOneLineFailure(
        CliRun.of("convert", "a.onnx", "b.onnx", "--external-data", "--threshold", "-1"), 2);
    assertOneLineFailure(
        CliRun.of("convert", "a.onnx", "b.onnx", "--external-data", "--threshold", "lots"), 2);
    assertOneLineFailure(CliRun.of("inspect", "--jsn"), 2);
    assertOneLineFailure(CliRun.of("frobnicate"), 2);
  }

  @Test
  void stacktraceIsThereWhenAskedFor() {
    CliRun run = CliRun.of("inspect", dir.resolve("nowhere.onnx").toString(), "--stacktrace");

    assertThat(run.exit()).isEqualTo(1);
    assertThat(run.err().lines().findFirst().orElseThrow()).contains("no such file");
    assertThat(run.err()).contains("at dev.graft");
  }

  private static void assertOneLineFailure(CliRun run, int exit) {
    assertThat(run.exit()).as("exit status; stderr: %s", run.err()).isEqualTo(exit);
    assertThat(run.err().lines()).as("stderr: %s", run.err()).hasSize(1);
    assertThat(run.err()).endsWith(System.lineSeparator());
    assertThat(run.err()).doesNotContain("Exception").doesNotContain("at dev.graft");
    assertThat(run.out()).isEmpty();
  }
}
