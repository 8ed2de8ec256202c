package dev.graft.tools.bench;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.ir.Model;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.ExternalTensor;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The large-model path end to end, each step a child process whose peak memory is sampled from
 * /proc: inspect, rewrite (LoRA on every MLP linear), real train steps (ORT opens the train-step
 * graph from a file that points at the model's data), merged export with verification, and
 * adapter-only export. Every step's wall time is printed as a ratio to {@code cp} of the data
 * file in the same run, with the peak resident set (VmHWM) and the peak anonymous memory
 * (RssAnon: heap plus native allocations, ORT's included; mapped model files are not in it).
 *
 * <p>By default the model is a few MB, so the suite checks the path quickly. Set the size in GiB
 * for the real proof:
 *
 * <pre>
 *   mvn -o -pl tools -am test -Dtest=BigModelProofTest -Dsurefire.failIfNoSpecifiedTests=false \
 *       -Dgraft.bigModel.gib=5 [-Dgraft.bigModel.dir=/big/disk] [-Dgraft.bigModel.threads=2]
 * </pre>
 */
class BigModelProofTest {
  @TempDir Path tmp;

  @Test
  void inspectRewriteTrainExportAtScale() throws Exception {
    double gib = Double.parseDouble(System.getProperty("graft.bigModel.gib", "0"));
    int threads = Integer.parseInt(System.getProperty("graft.bigModel.threads", "2"));
    Path dir =
        System.getProperty("graft.bigModel.dir") == null
            ? tmp
            : Files.createTempDirectory(Path.of(System.getProperty("graft.bigModel.dir")), "graft-big");
    try {
      run(gib, threads, dir);
    } finally {
      if (dir != tmp) deleteTree(dir);
    }
  }

  private void run(double gib, int threads, Path dir) throws Exception {
    BigDecoder.Config config =
        gib > 0
            ? BigDecoder.Config.ofBytes((long) (gib * (1L << 30)), 2048, 8192, 16)
            : BigDecoder.Config.ofBytes(4L << 20, 64, 256, 4);
    Path big = dir.resolve("big.onnx");
    long t0 = System.nanoTime();
    Path data = BigDecoder.write(config, big);
    long dataBytes = Files.size(data);
    System.out.printf(
        Locale.ROOT,
        "model: %d layers, width %d, ffn %d, %.2f GiB of external data (generated in %.1f s)%n",
        config.layers(), config.width(), config.ffn(), dataBytes / (double) (1L << 30), (System.nanoTime() - t0) / 1e9);

    System.out.println("load average at the start (1, 5, 15 min): " + loadAverage());
    String heap = gib > 0 ? "-Xmx3g" : "-Xmx1g";
    List<Step> steps = new ArrayList<>();
    Step cp = Step.run("cp data file", List.of("cp", data.toString(), dir.resolve("copy.data").toString()));
    steps.add(cp);
    Files.delete(dir.resolve("copy.data"));
    // The same copy forced to disk, as Graft's writers force each file before moving it into place:
    // the fair baseline on a machine with enough memory to take a plain cp into the page cache.
    Step cpSync =
        Step.run("cp + sync", List.of("sh", "-c", "cp \"$0\" \"$1\" && sync \"$1\"", data.toString(),
            dir.resolve("copy.data").toString()));
    steps.add(cpSync);
    Files.delete(dir.resolve("copy.data"));
    steps.add(graft(heap, "inspect", big.toString()));
    steps.add(
        graft(heap, "rewrite", big.toString(), dir.resolve("lora.onnx").toString(), "--lora", "--rank", "16",
            "--targets", "layer.*.ffn.*"));
    Step train =
        java(heap, BigModelTrain.class.getName(), dir.resolve("lora.onnx").toString(),
            dir.resolve("tuned.onnx").toString(), "4", Integer.toString(threads),
            // Adam moves every entry of B by about lr a step, coherently: a wide layer needs a
            // small rate (1e-4, as LoRA on large models uses), the 64-wide one trains at 1e-2.
            gib > 0 ? "1e-4" : "1e-2");
    steps.add(train);
    steps.add(graft(heap, "export", dir.resolve("tuned.onnx").toString(), dir.resolve("merged.onnx").toString(), "--merge"));
    steps.add(
        graft(heap, "export", dir.resolve("tuned.onnx").toString(), dir.resolve("adapter").toString(),
            "--adapter-only", "--base", big.toString()));
    // The default check of a large LoRA export is the per-weight probe; the whole-model check, for
    // comparison, on demand.
    steps.add(
        graft(heap, "export", dir.resolve("tuned.onnx").toString(), dir.resolve("merged-full.onnx").toString(),
            "--merge", "--verify", "full"));

    System.out.println("load average at the end (1, 5, 15 min): " + loadAverage());
    System.out.printf(
        Locale.ROOT, "%-22s %8s %8s %10s %10s %12s%n", "step", "wall s", "x cp", "x cp+sync", "VmHWM MiB", "RssAnon MiB");
    for (Step s : steps) {
      System.out.printf(
          Locale.ROOT, "%-22s %8.1f %8.2f %10.2f %10d %12d%n",
          s.name, s.seconds, s.seconds / cp.seconds, s.seconds / cpSync.seconds, s.hwmKib / 1024, s.peakAnonKib / 1024);
      // An export's "Time:" line splits its wall time: the export itself, and ORT's verification.
      Matcher verify = Pattern.compile("Time: .*verify (\\S+) s").matcher(s.output);
      if (verify.find()) {
        double v = Double.parseDouble(verify.group(1));
        System.out.printf(Locale.ROOT, "%-22s %8.1f %8.2f%n", "  without verify", s.seconds - v, (s.seconds - v) / cp.seconds);
        System.out.printf(Locale.ROOT, "%-22s %8.1f %8.2f%n", "  verify", v, v / cp.seconds);
      }
    }
    for (Step s : steps) {
      Matcher time = Pattern.compile("Time: .*").matcher(s.output);
      if (time.find()) System.out.println(s.name + ": " + time.group());
    }
    for (String line : train.output.split("\n")) if (line.startsWith("step ")) System.out.println(line);
    for (Step s : steps) {
      assertThat(s.exit).as(s.name + " failed:\n" + s.output).isZero();
    }

    // The training really trained: the loss went down over the steps, and stayed finite.
    List<Double> losses = new ArrayList<>();
    Matcher m = Pattern.compile("loss (\\S+)").matcher(train.output);
    while (m.find()) losses.add(Double.parseDouble(m.group(1)));
    assertThat(losses).hasSize(4).allMatch(Double::isFinite);
    assertThat(losses.get(3)).isLessThan(losses.get(0));
    // The export was verified against the tuned model by ORT (the CLI refuses to write otherwise).
    assertThat(steps.stream().filter(s -> s.name.equals("graft export --merge")).findFirst().orElseThrow().output)
        .contains("Verified:");
    Model merged = ModelIO.load(dir.resolve("merged.onnx"));
    if (gib > 0) {
      // Past 256 MiB the export streams and is written with external data.
      assertThat(merged.graph().initializers())
          .filteredOn(v -> v.initializer().orElseThrow() instanceof ExternalTensor)
          .isNotEmpty();
    }
    assertThat(merged.graph().nodeCount()).isEqualTo(ModelIO.load(big).graph().nodeCount());
    assertThat(Files.list(dir.resolve("adapter")).map(p -> p.getFileName().toString()).toList())
        .contains("adapter.safetensors", "adapter_config.json");
  }

  private static Step graft(String heap, String... args) throws Exception {
    List<String> a = new ArrayList<>(List.of(args));
    a.add(0, "dev.graft.tools.cli.Graft");
    return java(heap, a.toArray(String[]::new));
  }

  private static Step java(String heap, String... args) throws Exception {
    List<String> cmd = new ArrayList<>();
    cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    cmd.add(heap);
    // BigModelTrain opens its sessions on the main thread: room for ONNX Runtime's recursion (see
    // Graft.COMMAND_STACK_BYTES, which the CLI uses).
    cmd.add("-Xss256m");
    cmd.add("-cp");
    cmd.add(System.getProperty("java.class.path"));
    cmd.addAll(List.of(args));
    String name = args[0].endsWith("Graft") ? "graft " + args[1] : "train (4 steps)";
    if (args[0].endsWith("Graft") && args[1].equals("export")) {
      name = "graft export " + (List.of(args).contains("--adapter-only") ? "--adapter-only" : "--merge")
          + (List.of(args).contains("full") ? " --verify full" : "");
    }
    return Step.run(name, cmd);
  }

  /** One child process: wall time, exit status, output, peak VmHWM and sampled peak RssAnon. */
  private static final class Step {
    String name;
    double seconds;
    int exit;
    String output;
    long hwmKib;
    long peakAnonKib;
    boolean killed;
    /** Anonymous memory past which a step is stopped: -Dgraft.bigModel.maxAnonGib (default 9). */
    static final long MAX_ANON_KIB =
        (long) (Double.parseDouble(System.getProperty("graft.bigModel.maxAnonGib", "9")) * (1 << 20));

    static Step run(String name, List<String> cmd) throws Exception {
      Step s = new Step();
      s.name = name;
      Path log = Files.createTempFile("graft-step", ".log");
      try {
        long t0 = System.nanoTime();
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        Path status = Path.of("/proc", Long.toString(p.pid()), "status");
        while (p.isAlive()) {
          try {
            String st = Files.readString(status);
            s.peakAnonKib = Math.max(s.peakAnonKib, field(st, "RssAnon"));
            s.hwmKib = Math.max(s.hwmKib, field(st, "VmHWM"));
            if (s.peakAnonKib > MAX_ANON_KIB) {
              p.destroyForcibly(); // a shared machine: stop before the kernel's OOM killer does
              s.killed = true;
            }
          } catch (IOException gone) {
            // the process ended between the check and the read
          }
          p.waitFor(50, java.util.concurrent.TimeUnit.MILLISECONDS);
        }
        s.exit = p.waitFor();
        s.seconds = (System.nanoTime() - t0) / 1e9;
        s.output = Files.readString(log, StandardCharsets.UTF_8);
        if (s.killed) s.output += "\nstopped: anonymous memory passed " + MAX_ANON_KIB / 1024 + " MiB";
      } finally {
        Files.deleteIfExists(log);
      }
      return s;
    }

    private static long field(String status, String key) {
      Matcher m = Pattern.compile("(?m)^" + key + ":\\s+(\\d+) kB").matcher(status);
      return m.find() ? Long.parseLong(m.group(1)) : 0;
    }
  }

  /** The first three fields of /proc/loadavg, or "unknown" off Linux. */
  private static String loadAverage() {
    try {
      String[] f = Files.readString(Path.of("/proc/loadavg")).trim().split("\\s+");
      return f[0] + " " + f[1] + " " + f[2];
    } catch (IOException | RuntimeException e) {
      return "unknown";
    }
  }

  private static void deleteTree(Path dir) throws IOException {
    try (Stream<Path> s = Files.walk(dir)) {
      for (Path p : s.sorted(java.util.Comparator.reverseOrder()).toList()) Files.deleteIfExists(p);
    }
  }
}
