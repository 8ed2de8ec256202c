package dev.graft.tools.cli;

import dev.graft.trainer.generate.TextGenerator;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code graft generate}: what a decoder language model says after a prompt. */
@Command(
    name = "generate",
    mixinStandardHelpOptions = true,
    versionProvider = GraftVersion.class,
    description = {
      "Continue a prompt with a decoder language model (byte-level tokens, as graft train --task"
          + " causal-lm trains them), greedily or by nucleus (top-p) sampling. ONNX Runtime runs the"
          + " model, with its KV cache when it declares past_key_values inputs (standard exports and"
          + " ORT GenAI's GroupQueryAttention form alike); otherwise the whole sequence runs every step.",
      "Prints the prompt followed by the continuation."
    },
    footerHeading = "%nExamples:%n",
    footer = {
      "  graft generate runs/lm/tuned.onnx --prompt \"Fellow-Citizens of the Senate\"",
      "  graft generate runs/lm/tuned.onnx --prompt \"The economy\" --max-new-tokens 200 --top-p 0.9 --seed 7"
    })
final class GenerateCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Parameters(index = "0", paramLabel = "MODEL", description = "The decoder .onnx file.")
  Path model;

  @Option(names = "--prompt", required = true, paramLabel = "TEXT", description = "The text to continue.")
  String prompt;

  @Option(names = "--max-new-tokens", paramLabel = "N", description = "Bytes to generate. Default: ${DEFAULT-VALUE}.")
  int maxNewTokens = 100;

  @Option(names = "--top-p", paramLabel = "P",
      description = "Sample from the smallest set of tokens whose probability reaches P; 0 is greedy."
          + " Default: ${DEFAULT-VALUE}.")
  double topP = 0;

  @Option(names = "--temperature", paramLabel = "T", description = "Divides the logits before sampling. Default: ${DEFAULT-VALUE}.")
  double temperature = 1.0;

  @Option(names = "--seed", paramLabel = "N", description = "Seeds the sampling. Default: ${DEFAULT-VALUE}.")
  long seed = 42;

  @Option(names = "--threads", paramLabel = "N", description = "ONNX Runtime intra-op threads; 0 lets it choose.")
  int threads = 0;

  @Override
  public Integer call() throws Exception {
    Path path = ModelPaths.requireReadableModel(model);
    TextGenerator.Options options = new TextGenerator.Options(maxNewTokens, topP, temperature, seed);
    try (TextGenerator g = new TextGenerator(path, threads)) {
      String text = g.generate(prompt, options);
      PrintWriter out = spec.commandLine().getOut();
      out.println(prompt + text);
      out.flush();
    }
    return 0;
  }
}
