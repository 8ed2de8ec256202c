package dev.graft.tools.check;

import com.google.common.base.Strings;
import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMap;
import com.google.common.io.Resources;
import com.google.gson.Gson;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import dev.graft.ir.io.AtomicFiles;
import dev.graft.export.FeedForm;
import dev.graft.export.OnnxAdapterFile;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.io.SaveOptions;
import dev.graft.ir.tensor.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * ONNX Runtime for Node.js ({@code onnxruntime-node} from npm): a different build and version of
 * ORT than the Java one Graft runs. The package is installed once with {@code npm install
 * --ignore-scripts} (its install script would fetch optional GPU binaries from outside the
 * registry; the CPU binaries for Linux, macOS and Windows are in the package) into {@code
 * ~/.cache/graft/npm/onnxruntime-node-VERSION} (or {@code $GRAFT_CACHE/npm/...}). A small script shipped with
 * Graft ({@code ort-node-runner.js}) runs the model; tensors cross as raw files with a JSON
 * request and response ({@link TensorFiles}).
 *
 * <pre>
 *   Java: feeds ─► in*.bin + request.json ─► node ort-node-runner.js ─► out*.bin + response.json ─► Java
 * </pre>
 *
 * <p>Adapters: onnxruntime-node 1.30.0 has no LoRA adapter API (no {@code loadAdapter} in
 * {@code onnxruntime-common}'s typings, no active adapters in its {@code RunOptions}, no adapter
 * symbol in {@code onnxruntime_binding.node}, although the bundled {@code libonnxruntime.so} has
 * ORT's adapter code). So the script does what that API does inside ORT's {@code Run}: it reads
 * the {@code .onnx_adapter} FlatBuffer itself and feeds every parameter to the graph input of its
 * name, one session serving each adapter in turn. The session holds a temporary {@link FeedForm}
 * copy of the model, where those inputs have no initializer default: the Node binding drops, without
 * a word, feeds for inputs that have one (it passes ORT only the names in {@code
 * session.inputNames}, which leave them out), and the run would compute the base model.
 */
public final class OrtNodeRuntime implements TargetRuntime {
  /** The onnxruntime-node release installed: newer than the Java build (1.29.0). */
  public static final String VERSION = "1.30.0";

  private static final long INSTALL_TIMEOUT_MINUTES = 15;
  private static final long RUN_TIMEOUT_MINUTES = 10;

  @Override
  public String name() {
    return "ort-node";
  }

  @Override
  public Run run(Path model, Map<String, Tensor> feeds, RunSettings settings) throws Refusal {
    return exchange(model, feeds, List.of(), settings).get(0);
  }

  @Override
  public ImmutableList<Run> runAdapters(Path model, Map<String, Tensor> feeds, List<Path> adapters, RunSettings settings)
      throws Refusal {
    return exchange(model, feeds, adapters, settings);
  }

  /** One node process, one session: the plain run (no adapters), or one run per adapter. */
  private ImmutableList<Run> exchange(Path model, Map<String, Tensor> feeds, List<Path> adapters, RunSettings settings)
      throws Refusal {
    Path module = install();
    Path dir = null;
    try {
      dir = Files.createTempDirectory("graft-ort-node");
      if (!adapters.isEmpty()) {
        Set<String> names = new LinkedHashSet<>();
        for (Path a : adapters) names.addAll(OnnxAdapterFile.read(a).keySet());
        Model m = ModelIO.load(model);
        Set<String> defaulted = new LinkedHashSet<>();
        m.graph().inputs().stream().filter(Value::isInitializer).forEach(v -> defaulted.add(v.name()));
        defaulted.retainAll(names);
        FeedForm.apply(m, defaulted);
        model = dir.resolve("feed-form.onnx");
        ModelIO.save(m, model, SaveOptions.external());
      }
      Path script = dir.resolve("ort-node-runner.js");
      Files.writeString(
          script,
          Resources.toString(Resources.getResource(OrtNodeRuntime.class, "ort-node-runner.js"), StandardCharsets.UTF_8));
      JsonObject request = new JsonObject();
      request.addProperty("model", model.toAbsolutePath().toString());
      request.addProperty("threads", settings.threads());
      request.addProperty("warmup", settings.warmup());
      request.addProperty("runs", settings.runs());
      JsonArray inputs = new JsonArray();
      int i = 0;
      for (Map.Entry<String, Tensor> e : feeds.entrySet()) {
        String file = "in" + i++ + ".bin";
        TensorFiles.write(e.getValue(), dir.resolve(file));
        JsonObject in = new JsonObject();
        in.addProperty("name", e.getKey());
        in.addProperty("type", TensorFiles.typeName(e.getValue().dataType()));
        in.add("dims", dims(e.getValue().dims()));
        in.addProperty("file", file);
        inputs.add(in);
      }
      request.add("inputs", inputs);
      if (!adapters.isEmpty()) {
        JsonArray a = new JsonArray();
        adapters.forEach(p -> a.add(p.toAbsolutePath().toString()));
        request.add("adapters", a);
      }
      Files.writeString(dir.resolve("request.json"), request.toString());
      String log = exec(List.of(node(), script.toString(), module.toString(), dir.toString()), RUN_TIMEOUT_MINUTES, "run");
      Path responseFile = dir.resolve("response.json");
      if (!Files.exists(responseFile)) {
        throw new Refusal("run", null, "node wrote no response: " + log.strip());
      }
      JsonObject response = new Gson().fromJson(Files.readString(responseFile), JsonObject.class);
      if (response.has("error")) {
        String message = response.get("error").getAsString();
        throw new Refusal(response.get("stage").getAsString(), RefusalHints.opIn(message), message);
      }
      String engine = response.get("runtime").getAsString();
      if (adapters.isEmpty()) return ImmutableList.of(run(engine, response, dir));
      ImmutableList.Builder<Run> runs = ImmutableList.builder();
      for (JsonElement el : response.getAsJsonArray("adapters")) {
        runs.add(run(engine + ", adapter fed as inputs", el.getAsJsonObject(), dir));
      }
      return runs.build();
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot exchange tensors with Node.js in " + dir, e);
    } finally {
      AtomicFiles.deleteTreeQuietly(dir);
    }
  }

  /** One run's outputs (read from their files in {@code dir}) and latencies in the response. */
  private static Run run(String engine, JsonObject response, Path dir) {
    ImmutableMap.Builder<String, Tensor> outputs = ImmutableMap.builder();
    for (JsonElement el : response.getAsJsonArray("outputs")) {
      JsonObject o = el.getAsJsonObject();
      String name = o.get("name").getAsString();
      JsonArray d = o.getAsJsonArray("dims");
      long[] dims = new long[d.size()];
      for (int k = 0; k < dims.length; k++) dims[k] = d.get(k).getAsLong();
      outputs.put(
          name, TensorFiles.read(name, TensorFiles.dataType(o.get("type").getAsString()), dims, dir.resolve(o.get("file").getAsString())));
    }
    ImmutableList.Builder<Double> ms = ImmutableList.builder();
    for (JsonElement el : response.getAsJsonArray("latenciesMs")) ms.add(el.getAsDouble());
    return new Run(engine, outputs.build(), ms.build());
  }

  /**
   * The installed package folder ({@code .../node_modules/onnxruntime-node}), installing it first
   * when it is missing. A half-finished install is never used: it goes to a temporary folder that
   * is moved into place when npm is done.
   */
  public static Path install() throws Refusal {
    String cache = System.getenv("GRAFT_CACHE");
    Path root = Strings.isNullOrEmpty(cache) ? Path.of(System.getProperty("user.home"), ".cache", "graft") : Path.of(cache);
    Path home = root.resolve("npm").resolve("onnxruntime-node-" + VERSION);
    Path module = home.resolve("node_modules").resolve("onnxruntime-node");
    if (Files.isRegularFile(module.resolve("package.json"))) return module;
    try {
      Files.createDirectories(home.getParent());
      Path work = Files.createTempDirectory(home.getParent(), "install-");
      exec(
          List.of(npm(), "install", "--ignore-scripts", "--no-audit", "--no-fund", "--prefix", work.toString(),
              "onnxruntime-node@" + VERSION),
          INSTALL_TIMEOUT_MINUTES,
          "install");
      try {
        Files.move(work, home, StandardCopyOption.ATOMIC_MOVE);
      } catch (IOException raced) {
        if (!Files.isRegularFile(module.resolve("package.json"))) throw raced;
        AtomicFiles.deleteTreeQuietly(work); // another process installed it meanwhile
      }
      return module;
    } catch (IOException e) {
      throw new Refusal("install", null, "cannot install onnxruntime-node@" + VERSION + " into " + home + ": " + e.getMessage());
    }
  }

  private static String exec(List<String> command, long timeoutMinutes, String stage) throws Refusal {
    try {
      Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
      byte[] out = p.getInputStream().readAllBytes();
      if (!p.waitFor(timeoutMinutes, TimeUnit.MINUTES)) {
        p.destroyForcibly();
        throw new Refusal(stage, null, String.join(" ", command) + " did not finish within " + timeoutMinutes + " minutes");
      }
      String log = new String(out, StandardCharsets.UTF_8);
      if (p.exitValue() != 0 && stage.equals("install")) {
        throw new Refusal(stage, null, "npm install failed (exit " + p.exitValue() + "): " + tail(log));
      }
      return log;
    } catch (IOException e) {
      throw new Refusal(
          stage,
          null,
          "cannot run '" + command.get(0) + "' (" + e.getMessage() + "). ORT for Node.js needs Node.js and npm:"
              + " apt-get install nodejs npm, or set $GRAFT_NODE / $GRAFT_NPM to their paths.");
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new Refusal(stage, null, "interrupted");
    }
  }

  private static String tail(String log) {
    String s = log.strip();
    return s.length() > 600 ? "..." + s.substring(s.length() - 600) : s;
  }

  private static String node() {
    String env = System.getenv("GRAFT_NODE");
    return Strings.isNullOrEmpty(env) ? "node" : env;
  }

  private static String npm() {
    String env = System.getenv("GRAFT_NPM");
    return Strings.isNullOrEmpty(env) ? "npm" : env;
  }

  private static JsonArray dims(long[] dims) {
    JsonArray a = new JsonArray();
    for (long d : dims) a.add(d);
    return a;
  }

}
