package dev.graft.tools.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.fixtures.PretrainedModels;
import dev.graft.ir.io.ModelIO;
import dev.graft.rewrite.TrainableRegistry;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What a new user ran into, each now one clear line and exit status 1 (none of these reaches a
 * model: they fail on the data or the paths first). The SLF4J warnings are checked on a real
 * child process's stderr in {@link KillResumeTest}.
 */
class FrictionTest {
  private static final String RECIPE = Path.of("..", "examples", "recipes", "lora.yaml").toString();

  private static CliRun train(Path data, Path out) {
    return CliRun.of("train", "--recipe", RECIPE, "--train", data.toString(), "--out", out.toString());
  }

  private static void assertUserError(CliRun run) {
    assertThat(run.exit()).as(run.err()).isEqualTo(1);
    assertThat(run.err().strip().lines()).as(run.err()).hasSize(1);
    assertThat(run.err()).doesNotContain("bug").doesNotContain("unexpected").doesNotContain("Exception");
  }

  @Test
  void anEmptyDataFileIsTheUsersInputNotABug(@TempDir Path dir) throws Exception {
    Path empty = Files.writeString(dir.resolve("train.tsv"), "");
    CliRun run = train(empty, dir.resolve("r"));
    assertUserError(run);
    assertThat(run.err()).contains("train.tsv").contains("is empty");
  }

  @Test
  void aMissingLabelColumnNamesTheColumnsThereAre(@TempDir Path dir) throws Exception {
    Path data = Files.writeString(dir.resolve("train.tsv"), "text\tstars\ngood\t5\nbad\t1\n");
    CliRun run = train(data, dir.resolve("r"));
    assertUserError(run);
    assertThat(run.err()).contains("train.tsv").contains("label").contains("stars").contains("--label-column");

    CliRun eval = CliRun.of("eval", PretrainedModels.miniLm().toString(), "--data", data.toString());
    assertUserError(eval);
  }

  @Test
  void aFileThatIsNotUtf8SaysSoWithTheLineAndTheFix(@TempDir Path dir) throws Exception {
    byte[] latin1 = "text\tlabel\ngood food\t1\nna\u00efve service, caf\u00e9 closed\t0\n".getBytes(StandardCharsets.ISO_8859_1);
    Path data = Files.write(dir.resolve("train.tsv"), latin1);
    CliRun run = train(data, dir.resolve("r"));
    assertUserError(run);
    assertThat(run.err()).contains("train.tsv line 3").contains("not valid UTF-8").contains("0xEF")
        .contains("iconv -f latin1 -t utf-8");

    Path jsonl = Files.write(dir.resolve("train.jsonl"),
        "{\"text\": \"caf\u00e9\", \"label\": \"1\"}\n".getBytes(StandardCharsets.ISO_8859_1));
    CliRun json = train(jsonl, dir.resolve("s"));
    assertUserError(json);
    assertThat(json.err()).contains("train.jsonl line 1").contains("not valid UTF-8");
  }

  @Test
  void rewriteRefusesToOverwriteItsInputUnlessInPlace(@TempDir Path dir) throws Exception {
    Path model = dir.resolve("m.onnx");
    Files.copy(PretrainedModels.miniLm(), model);
    byte[] before = Files.readAllBytes(model);
    String[] args = {"rewrite", model.toString(), model.toString(), "--layernorm-affine", "--layers", "0"};

    CliRun refused = CliRun.of(args);
    assertUserError(refused);
    assertThat(refused.err()).contains("is the input model").contains("--in-place");
    assertThat(Arrays.equals(Files.readAllBytes(model), before)).as("the input is untouched").isTrue();
    // Another spelling of the same file is the same file.
    CliRun dotted = CliRun.of("rewrite", model.toString(), dir.resolve(".").resolve("m.onnx").toString(),
        "--layernorm-affine", "--layers", "0");
    assertUserError(dotted);

    String[] inPlace = Arrays.copyOf(args, args.length + 1);
    inPlace[args.length] = "--in-place";
    CliRun replaced = CliRun.of(inPlace);
    assertThat(replaced.exit()).as(replaced.err()).isZero();
    assertThat(TrainableRegistry.parameterCount(ModelIO.load(model))).isPositive();
  }
}
