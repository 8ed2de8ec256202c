package dev.graft.tools.cli;

import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ScopeType;

/**
 * {@code graft}: the command line over the Graft library. Commands are thin: they parse, call
 * the library and print. Exit status: 0 ok, 1 bad input or a failed run, 2 usage error.
 */
@Command(
    name = "graft",
    mixinStandardHelpOptions = true,
    versionProvider = GraftVersion.class,
    subcommands = {
      InspectCommand.class,
      ConvertCommand.class,
      RewriteCommand.class,
      TrainCommand.class,
      EvalCommand.class,
      QuickstartCommand.class,
      ExportCommand.class,
      MethodsCommand.class,
      CheckCommand.class,
      BenchCommand.class,
      GenerateCommand.class,
    },
    description = "Parameter-efficient fine-tuning as an ONNX graph transformation.",
    synopsisSubcommandLabel = "COMMAND",
    footerHeading = "%nExamples:%n",
    footer = {
      "  graft inspect                      the embedded all-MiniLM-L6-v2",
      "  graft inspect model.onnx --json    machine-readable summary",
      "  graft convert in.onnx out.onnx --external-data",
      "  graft rewrite in.onnx out.onnx --recipe examples/recipes/lora.yaml",
      "",
      "Exit status: 0 ok, 1 bad input or failed run, 2 usage error.",
      "Run 'graft COMMAND --help' for a command's options."
    })
public final class Graft implements Runnable {
  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  /** Printed by {@link Failures} after the one-line message; the field exists for --help. */
  @Option(
      names = "--stacktrace",
      scope = ScopeType.INHERIT,
      description = "On failure, also print the stack trace (for bug reports).")
  boolean stackTrace;

  @Override
  public void run() {
    // `graft` alone: show what there is to run.
    spec.commandLine().usage(spec.commandLine().getOut());
  }

  /**
   * The stack of the thread that runs a command. ONNX Runtime builds and optimises sessions on the
   * calling thread, and on a train-step graph its recursion can pass the JVM's default 1 MiB
   * thread stack: a native overflow there kills the process with SIGSEGV and no message (seen with
   * a long classpath). Graft runs every command on a thread with room to spare.
   */
  static final long COMMAND_STACK_BYTES = 256L << 20;

  public static void main(String... args) {
    PrintWriter out = new PrintWriter(System.out, true, StandardCharsets.UTF_8);
    PrintWriter err = new PrintWriter(System.err, true, StandardCharsets.UTF_8);
    int[] status = {1};
    Thread command = new Thread(null, () -> status[0] = run(out, err, args), "graft", COMMAND_STACK_BYTES);
    command.start();
    try {
      command.join();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    System.exit(status[0]);
  }

  /** Runs the CLI in-process, writing to {@code out} and {@code err}; returns the exit status. */
  public static int run(PrintWriter out, PrintWriter err, String... args) {
    Failures failures = new Failures();
    CommandLine cli =
        new CommandLine(new Graft())
            .setOut(out)
            .setErr(err)
            .setExecutionExceptionHandler(failures)
            .setParameterExceptionHandler(failures);
    RewriteCommand.listMethodsInHelp(cli.getSubcommands().get("rewrite"));
    try {
      return cli.execute(args);
    } catch (Throwable t) {
      // picocli hands Errors (out of memory, stack overflow) back to the caller.
      err.println("graft: " + Failures.oneLine(Failures.describe(t)));
      return Failures.FAILED;
    } finally {
      out.flush();
      err.flush();
    }
  }
}
