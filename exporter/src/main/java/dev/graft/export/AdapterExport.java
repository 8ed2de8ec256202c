package dev.graft.export;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMap;
import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import com.google.gson.JsonPrimitive;
import dev.graft.ir.io.AtomicFiles;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.ir.Value;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.io.SafeTensors;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.PassManager;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.TrainableRegistry.Entry;
import dev.graft.rewrite.method.AppliedMethods;
import dev.graft.rewrite.method.Methods;
import dev.graft.rewrite.method.PeftMethod;
import dev.graft.rewrite.recipe.PassFactory;
import dev.graft.rewrite.recipe.Recipe;
import dev.graft.rewrite.peft.LoraPass;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.function.Consumer;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/**
 * The adapter-only export: a tuned model's trained parameters alone, for a base model the user
 * already has.
 *
 * <pre>
 *   OUT_DIR/adapter.safetensors          every trainable initializer, by its name in the tuned model
 *   OUT_DIR/adapter_config.json          methods, targets, rank, alpha, labels, the base's SHA-256,
 *                                        and how to rebuild the graph ("passes")
 *   OUT_DIR/adapter.onnx_adapter         (LoRA) the same parameters in ONNX Runtime's format
 *   OUT_DIR/base_with_lora_inputs.onnx   (LoRA) the base with the adapter's structure, each
 *                                        trainable an input whose default (zero) is the identity
 *   OUT_DIR/peft/                        (LoRA) adapter_model.safetensors and adapter_config.json in
 *                                        Hugging Face PEFT's layout ({@link PeftAdapterFiles})
 * </pre>
 *
 * {@link #apply} rebuilds the tuned model: it checks the base's SHA-256, runs the recorded passes
 * on the base (their initializer names are deterministic: module name plus role) and puts the
 * trained values in. A base with another SHA-256 is refused. The passes are those the rewrite
 * recorded ({@link AppliedMethods}: method, options as given, modules adapted), replayed through
 * the recipe reader, so every registered method replays; a tuned model with trainables no record
 * explains is refused at write time, so no adapter is written that cannot be applied.
 *
 * <p>Multi-LoRA serving: ONNX Runtime feeds the parameters of an active {@code OrtLoraAdapter}
 * as graph inputs by name ({@link OnnxAdapterFile}). In {@code base_with_lora_inputs.onnx} every
 * trainable (LoRA A and B, and the head or norm deltas when the adapter has them) is a graph
 * input with an initializer default of zeros, so a session with no adapter active computes the
 * base model (with a zero head, if any), and one session serves every adapter exported from the
 * same base and recipe: {@code RunOptions.addActiveLoraAdapter} picks one per run.
 *
 * <p>{@link #write} verifies before anything lands in OUT_DIR: the files go to a temporary folder
 * beside it and are read back and applied to the base; only when that reproduces the tuned model
 * are they moved into OUT_DIR. How ({@link ExportOptions.Verify}):
 *
 * <pre>
 *   full   whole models on ORT: the tuned model once, the adapter applied to the base and (LoRA) the
 *          multi-adapter graph with the adapter active must give its outputs within {@link
 *          ExportVerifier#FP32_TOLERANCE}; each run reads every frozen weight (2 s on a 4 GiB model)
 *   probe  the rebuilt graph and base_with_lora_inputs.onnx are the tuned graph node for node, with
 *          the tuned model's frozen tensors ({@link GraphMatch}), and each module's branch, with the
 *          tensors read back from adapter.safetensors and fed by ORT's LoRA loader from the
 *          .onnx_adapter, gives the tuned branch's values on random rows ({@link AdapterProbe});
 *          no frozen weight is run, and where the tuned model shares the base's data file (graft
 *          rewrite and train link it) none is read
 *   auto   probe for a model with 256 MiB or more of external data whose trained tensors all sit
 *          in linear branches (LoRA and its kin), unless the graph differs; full otherwise
 * </pre>
 */
public final class AdapterExport {
  public static final String SAFETENSORS = "adapter.safetensors";
  public static final String CONFIG = "adapter_config.json";
  public static final String ORT_ADAPTER = "adapter" + OnnxAdapterFile.EXTENSION;
  public static final String BASE_WITH_INPUTS = "base_with_lora_inputs.onnx";
  public static final String PEFT_DIR = "peft";
  public static final String FORMAT = "graft-adapter";
  public static final String LABELS_KEY = "graft.labels";
  /** Version 2 replays the recorded passes ({@link AppliedMethods}) from their options as given. */
  public static final int VERSION = 2;

  private static final Gson GSON = new GsonBuilder().setPrettyPrinting().disableHtmlEscaping().create();

  /** What {@link #write} wrote and how well it reproduced the tuned model. */
  public record AdapterReport(
      Path dir,
      ImmutableList<String> files,
      ImmutableList<String> methods,
      long parameters,
      ExportVerifier.Verification applied,
      ExportVerifier.Verification ortAdapter,
      Timing timing,
      ExportOptions.Verify verifiedBy) {
    /** What the check of the adapter applied to the base found, in words. */
    public String appliedSummary() {
      return summary(applied);
    }

    /** What the check of the multi-LoRA graph with the adapter active found (LoRA only). */
    public String ortAdapterSummary() {
      return summary(ortAdapter);
    }

    private String summary(ExportVerifier.Verification v) {
      return switch (verifiedBy) {
        case PROBE -> AdapterProbe.summary(v);
        case NONE -> "unchecked (--verify none)";
        default -> v.summary();
      };
    }
  }

  /**
   * Wall seconds of an adapter export: hashing the base's model file and writing the adapter's
   * files; verifying them on ORT (the tuned model once, the adapter applied to the base, and for
   * LoRA the multi-adapter graph with the adapter active).
   */
  public record Timing(double writeSeconds, double verifySeconds) {
    /** {@code write 0.4 s, verify 6.1 s}. */
    public String summary() {
      return String.format(java.util.Locale.ROOT, "write %.1f s, verify %.1f s", writeSeconds, verifySeconds);
    }
  }

  private AdapterExport() {}

  /** Writes the adapter of {@code tuned} (made from {@code baseModel}) to {@code outDir}. */
  public static AdapterReport write(Model tuned, Path baseModel, Path outDir) {
    return write(tuned, baseModel, outDir, ExportOptions.Verify.AUTO);
  }

  /**
   * As {@link #write(Model, Path, Path)}, checked as {@code verify} says: {@link
   * ExportOptions.Verify#FULL} runs whole models, {@link ExportOptions.Verify#PROBE} checks the
   * graph and each module ({@link AdapterProbe}), {@link ExportOptions.Verify#AUTO} probes a model
   * with {@link ExportVerifier#LARGE_EXTERNAL_BYTES} or more of external data whose trained
   * tensors all sit in linear branches, and runs whole models otherwise (or when the rebuilt
   * graph differs from the tuned one).
   */
  public static AdapterReport write(Model tuned, Path baseModel, Path outDir, ExportOptions.Verify verify) {
    return write(tuned, baseModel, outDir, verify, dir -> {});
  }

  /**
   * As above, with {@code beforeVerify} given the temporary folder once the adapter's files are in
   * it and before they are read back: the test hook that proves a broken file is not written.
   */
  static AdapterReport write(
      Model tuned, Path baseModel, Path outDir, ExportOptions.Verify verify, Consumer<Path> beforeVerify) {
    checkArgument(verify != null, "The verification mode is null; use Verify.AUTO for the default");
    ImmutableList<Entry> entries = TrainableRegistry.read(tuned);
    checkArgument(
        !entries.isEmpty(),
        "The tuned model has no trainable parameters recorded (model metadata '%s'); an adapter"
            + " export needs a model made by graft rewrite or graft train.",
        TrainableRegistry.KEY);
    List<String> methods = entries.stream().map(Entry::method).distinct().toList();
    ImmutableList<AppliedMethods.Applied> applied = AppliedMethods.read(tuned);
    for (String m : methods) {
      checkArgument(
          applied.stream().anyMatch(a -> a.pass().equals(m)),
          "The tuned model has trainables of method '%s' but no record of the pass that made them"
              + " (model metadata '%s' lists %s), so the adapter export cannot rebuild it on a base."
              + " Rewrite the model from a recipe (graft rewrite --recipe, graft train), or export it"
              + " merged (--merge) instead.",
          m,
          AppliedMethods.KEY,
          applied.stream().map(AppliedMethods.Applied::method).toList());
    }
    checkArgument(Files.isRegularFile(baseModel), "Base model %s is not a file", baseModel);
    checkArgument(
        !Files.exists(outDir) || isEmptyDir(outDir),
        "Output folder %s exists and is not empty; pick a new folder or empty it",
        outDir);

    Graph g = tuned.graph();
    Map<String, Tensor> params = new LinkedHashMap<>();
    for (Entry e : entries) {
      Tensor t = g.initializer(e.initializer()).flatMap(Value::initializer).orElseThrow(
          () -> new IllegalArgumentException(
              "Trainable '" + e.initializer() + "' (" + e.method() + " " + e.module()
                  + ") is recorded in the metadata but is not an initializer of the tuned model"));
      params.put(e.initializer(), t);
    }
    Set<String> trainables = params.keySet();
    AdapterProbe.Result<Map<String, AdapterProbe.Branch>> branches = AdapterProbe.branches(tuned, trainables);
    checkArgument(
        verify != ExportOptions.Verify.PROBE || branches.ok(),
        "--verify probe checks adapters whose trained tensors all sit in linear branches (LoRA and its"
            + " kin), but in this one %s: use --verify full (or auto).",
        branches.why());
    ExportOptions.Verify used =
        verify == ExportOptions.Verify.AUTO
            ? branches.ok() && OrtEval.externalBytes(tuned) >= ExportVerifier.LARGE_EXTERNAL_BYTES
                ? ExportOptions.Verify.PROBE
                : ExportOptions.Verify.FULL
            : verify;
    long t0 = System.nanoTime();
    double verifying = 0;
    JsonObject config = config(tuned, entries, applied, sha256(baseModel), baseModel.getFileName().toString());
    boolean lora = methods.contains(LoraPass.METHOD);

    Path abs = outDir.toAbsolutePath();
    Path tmp;
    try {
      Files.createDirectories(abs.getParent());
      tmp = Files.createTempDirectory(abs.getParent(), "." + abs.getFileName() + ".");
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot create a temporary folder beside " + outDir + ": " + e.getMessage(), e);
    }
    GraphMatch.Ahead ahead = GraphMatch.Ahead.NONE;
    try {
      // The probe's byte comparisons of frozen tensors (a tuned model whose data file is a copy of
      // the base's) run while the files are written and applied.
      if (used == ExportOptions.Verify.PROBE) ahead = GraphMatch.Ahead.start(tuned, WorkingModels.load(baseModel), trainables);
      Map<String, String> stMeta = Map.of("format", FORMAT, "base_model_sha256", config.get("base_model_sha256").getAsString());
      SafeTensors.write(tmp.resolve(SAFETENSORS), params, stMeta);
      Files.writeString(tmp.resolve(CONFIG), GSON.toJson(config) + "\n", StandardCharsets.UTF_8);
      if (lora) {
        OnnxAdapterFile.write(tmp.resolve(ORT_ADAPTER), params, 1, 1);
        // The LoRA part in Hugging Face PEFT's files, for PeftModel.from_pretrained (not for a
        // PiSSA or OLoRA init, whose base weights are residuals: see PeftAdapterFiles.weightInit).
        if (PeftAdapterFiles.weightInit(tuned).isEmpty()) PeftAdapterFiles.write(tuned, tmp.resolve(PEFT_DIR));
      }
      beforeVerify.accept(tmp);

      // The files applied to the base: the rebuilt model every check reads, and the multi-LoRA
      // graph's structure. The base's weights are shared, not copied: its data file is linked.
      long a0 = System.nanoTime();
      Model rebuilt = apply(baseModel, tmp);
      verifying += System.nanoTime() - a0;
      if (lora) ModelIO.saveLinked(baseWithInputs(rebuilt), tmp.resolve(BASE_WITH_INPUTS));

      long v0 = System.nanoTime();
      ExportVerifier.Verification v = null;
      ExportVerifier.Verification ortV = null;
      if (used == ExportOptions.Verify.PROBE) {
        Optional<Checks> probed =
            probe(tuned, branches.value(), rebuilt, lora, tmp, trainables, ahead, verify == ExportOptions.Verify.PROBE);
        if (probed.isPresent()) {
          v = probed.get().applied();
          ortV = probed.get().ortAdapter();
        } else {
          used = ExportOptions.Verify.FULL; // auto, and the graph differs: the outputs decide
        }
      }
      if (used == ExportOptions.Verify.FULL) {
        // The tuned model runs once; every check compares against its outputs.
        Map<String, Tensor> feeds = ExportVerifier.verificationInputs(tuned, 20240611L);
        ImmutableMap<String, Tensor> expected = OrtEval.run(tuned, feeds, "the tuned model");
        v = ExportVerifier.verify(expected, OrtEval.run(rebuilt, feeds, "the adapter applied to the base"), ExportVerifier.FP32_TOLERANCE);
        if (lora) {
          ortV = MultiLora.verify(expected, tmp.resolve(BASE_WITH_INPUTS), tmp.resolve(ORT_ADAPTER), feeds, OrtEval.externalBytes(tuned));
        }
      }
      if (used == ExportOptions.Verify.NONE) v = new ExportVerifier.Verification(ImmutableList.of(), ExportVerifier.FP32_TOLERANCE);
      verifying += System.nanoTime() - v0;
      Files.createDirectories(outDir);
      List<String> files = new ArrayList<>();
      try (Stream<Path> s = Files.list(tmp)) {
        for (Path p : s.sorted().toList()) {
          Files.move(p, outDir.resolve(p.getFileName()));
          files.add(p.getFileName().toString());
        }
      }
      long count = params.values().stream().mapToLong(Tensor::numElements).sum();
      double total = (System.nanoTime() - t0) / 1e9;
      Timing timing = new Timing(total - verifying / 1e9, verifying / 1e9);
      return new AdapterReport(outDir, ImmutableList.copyOf(files), ImmutableList.copyOf(methods), count, v, ortV, timing, used);
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot write the adapter to " + outDir + ": " + e.getMessage(), e);
    } finally {
      ahead.close();
      AtomicFiles.deleteTreeQuietly(tmp);
    }
  }

  /**
   * The probe ({@link GraphMatch}, then {@link AdapterProbe}) of the files in {@code tmp}: the
   * checks of the adapter applied to the base and (LoRA) of the multi-LoRA graph; empty when a
   * graph differs and {@code strict} is off (auto: the caller runs whole models instead).
   */
  private static Optional<Checks> probe(
      Model tuned,
      Map<String, AdapterProbe.Branch> branches,
      Model rebuilt,
      boolean lora,
      Path tmp,
      Set<String> trainables,
      GraphMatch.Ahead ahead,
      boolean strict) {
    Model served = lora ? ModelIO.load(tmp.resolve(BASE_WITH_INPUTS)) : null;
    Optional<String> differs = GraphMatch.difference(tuned, rebuilt, trainables, ahead)
        .map(d -> "the adapter applied to the base differs from the tuned graph: " + d)
        // Against the rebuilt model, whose frozen tensors it shares (the linked data file).
        .or(() -> lora
            ? GraphMatch.difference(rebuilt, served, trainables).map(d -> BASE_WITH_INPUTS + " differs from the tuned graph: " + d)
            : Optional.empty());
    if (differs.isPresent() && strict) {
      throw new ExportVerifier.VerificationFailedException(
          "Export verification failed: " + differs.get() + ". Nothing was written. The probe checks"
              + " adapters that rebuild the tuned graph exactly; export with --verify full to compare"
              + " the models' outputs instead.",
          new ExportVerifier.Verification(ImmutableList.of(), ExportVerifier.FP32_TOLERANCE));
    }
    if (differs.isPresent()) return Optional.empty();
    Map<String, Tensor> readBack = new LinkedHashMap<>();
    for (String t : trainables) readBack.put(t, rebuilt.graph().initializer(t).flatMap(Value::initializer).orElseThrow());
    ExportVerifier.Verification applied = AdapterProbe.check(
        tuned, branches, rebuilt, AdapterProbe.branches(rebuilt, trainables).value(), trainables, readBack,
        null, SAFETENSORS, ExportVerifier.FP32_TOLERANCE);
    ExportVerifier.Verification ortAdapter = null;
    if (lora) {
      MultiLora.requireLoads(tmp.resolve(BASE_WITH_INPUTS), OrtEval.externalBytes(tuned));
      ortAdapter = AdapterProbe.check(
          tuned, branches, served, AdapterProbe.branches(served, trainables).value(), trainables, null,
          tmp.resolve(ORT_ADAPTER), ORT_ADAPTER, ExportVerifier.FP32_TOLERANCE);
    }
    return Optional.of(new Checks(applied, ortAdapter));
  }

  /** The two checks of an adapter: applied to the base, and (LoRA) served by ORT's multi-LoRA. */
  private record Checks(ExportVerifier.Verification applied, ExportVerifier.Verification ortAdapter) {}

  /** Rebuilds the tuned model from {@code baseModel} and the adapter in {@code adapterDir}. */
  public static Model apply(Path baseModel, Path adapterDir) {
    JsonObject config = readConfig(adapterDir);
    checkBase(config, baseModel, adapterDir);
    Model m = replay(baseModel, config, adapterDir);
    SafeTensors.Contents contents = SafeTensors.read(adapterDir.resolve(SAFETENSORS));
    Graph g = m.graph();
    Set<String> expected =
        TrainableRegistry.read(m).stream().map(Entry::initializer).collect(Collectors.toCollection(LinkedHashSet::new));
    checkArgument(
        expected.equals(contents.tensors().keySet()),
        "The adapter in %s holds parameters %s, but rebuilding its passes on the base made %s. The"
            + " adapter was written by another Graft version or edited.",
        adapterDir,
        contents.tensors().keySet(),
        expected);
    for (Map.Entry<String, Tensor> e : contents.tensors().entrySet()) {
      Value v = g.initializer(e.getKey()).orElseThrow();
      Tensor now = v.initializer().orElseThrow();
      checkArgument(
          now.dataType() == e.getValue().dataType() && now.shape().equals(e.getValue().shape()),
          "Adapter parameter '%s' is %s %s but the rebuilt model expects %s %s",
          e.getKey(),
          e.getValue().dataType(),
          e.getValue().shape(),
          now.dataType(),
          now.shape());
      g.setInitializer(v, e.getValue().withName(v.name()));
    }
    if (config.has("labels") && !config.get("labels").isJsonNull()) {
      JsonElement labels = config.get("labels");
      m.putMetadata(LABELS_KEY, labels.isJsonPrimitive() ? labels.getAsString() : labels.toString());
    }
    return m;
  }

  /** The SHA-256 of a file, as lower-case hex. */
  public static String sha256(Path file) {
    try (InputStream in = new DigestInputStream(Files.newInputStream(file), MessageDigest.getInstance("SHA-256"))) {
      byte[] buf = new byte[1 << 16];
      while (in.read(buf) >= 0) {
        // the digest stream hashes as it reads
      }
      return HexFormat.of().formatHex(((DigestInputStream) in).getMessageDigest().digest());
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot read " + file + ": " + e.getMessage(), e);
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("This JVM lacks SHA-256", e);
    }
  }

  // ---- the config -----------------------------------------------------------------------------------

  private static JsonObject config(
      Model tuned, List<Entry> entries, List<AppliedMethods.Applied> applied, String sha, String baseName) {
    JsonObject c = new JsonObject();
    c.addProperty("format", FORMAT);
    c.addProperty("version", VERSION);
    c.addProperty("base_model_sha256", sha);
    c.addProperty("base_model_file", baseName);
    JsonArray methods = new JsonArray();
    entries.stream().map(Entry::method).distinct().forEach(methods::add);
    c.add("methods", methods);

    JsonObject targets = new JsonObject();
    for (Entry e : entries) {
      if (!targets.has(e.method())) targets.add(e.method(), new JsonArray());
      JsonArray a = targets.getAsJsonArray(e.method());
      if (!a.contains(new JsonPrimitive(e.module()))) a.add(e.module());
    }
    c.add("targets", targets);

    // How to rebuild the graph: the recorded passes, each with its options as given.
    JsonArray passes = new JsonArray();
    for (AppliedMethods.Applied a : applied) passes.add(AppliedMethods.toJson(a));
    c.add("passes", passes);
    // rank and alpha of the (first) LoRA pass, for readers that want the usual PEFT fields.
    applied.stream().filter(a -> a.method().equals(LoraPass.METHOD)).findFirst().ifPresent(a -> {
      LoraPass.Config d = LoraPass.Config.defaults();
      Object rank = a.options().getOrDefault("rank", d.rank());
      Object alpha = a.options().getOrDefault("alpha", d.alpha());
      c.addProperty("rank", ((Number) rank).intValue());
      c.addProperty("alpha", ((Number) alpha).doubleValue());
    });
    String labels = tuned.metadata().get(LABELS_KEY);
    if (labels != null) {
      try {
        c.add("labels", JsonParser.parseString(labels));
      } catch (JsonParseException e) {
        c.addProperty("labels", labels);
      }
    }
    JsonArray params = new JsonArray();
    for (Entry e : entries) {
      JsonObject o = new JsonObject();
      o.addProperty("initializer", e.initializer());
      o.addProperty("method", e.method());
      o.addProperty("module", e.module());
      o.addProperty("role", e.role());
      params.add(o);
    }
    c.add("parameters", params);
    return c;
  }

  // ---- apply ------------------------------------------------------------------------------------

  private static JsonObject readConfig(Path adapterDir) {
    Path file = adapterDir.resolve(CONFIG);
    checkArgument(Files.isRegularFile(file), "%s has no %s; is it an adapter folder written by graft export --adapter-only?", adapterDir, CONFIG);
    try {
      JsonObject c = JsonParser.parseString(Files.readString(file)).getAsJsonObject();
      checkArgument(
          c.has("format") && FORMAT.equals(c.get("format").getAsString()),
          "%s is not a Graft adapter config (format '%s', expected '%s')",
          file,
          c.has("format") ? c.get("format").getAsString() : "",
          FORMAT);
      return c;
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot read " + file + ": " + e.getMessage(), e);
    } catch (JsonParseException | IllegalStateException e) {
      throw new IllegalArgumentException(file + " is not valid JSON: " + e.getMessage(), e);
    }
  }

  private static void checkBase(JsonObject config, Path baseModel, Path adapterDir) {
    checkArgument(Files.isRegularFile(baseModel), "Base model %s is not a file", baseModel);
    String want = config.get("base_model_sha256").getAsString();
    String got = sha256(baseModel);
    checkArgument(
        want.equals(got),
        "The adapter in %s was trained on a base model with SHA-256 %s (%s), but %s has SHA-256 %s."
            + " An adapter only fits the exact model it was trained on; apply it to that model.",
        adapterDir,
        want,
        config.has("base_model_file") ? config.get("base_model_file").getAsString() : "?",
        baseModel,
        got);
  }

  /**
   * The base with the recorded passes applied (trainables at their pass defaults): each pass is
   * a recipe entry, its options as given and its targets narrowed to exactly the modules it
   * adapted, read and validated like any recipe.
   */
  private static Model replay(Path baseModel, JsonObject config, Path adapterDir) {
    int version = config.has("version") ? config.get("version").getAsInt() : 1;
    checkArgument(
        version == VERSION,
        "The adapter in %s is version %s of Graft's adapter format; this Graft reads version %s."
            + " Export the adapter again from the tuned model.",
        adapterDir,
        version,
        VERSION);
    Model m = WorkingModels.load(baseModel);
    List<Map<String, Object>> entries = new ArrayList<>();
    for (JsonElement e : config.getAsJsonArray("passes")) {
      AppliedMethods.Applied a = AppliedMethods.fromJson(e);
      PeftMethod method = Methods.find(a.method()).orElseThrow(() -> new IllegalArgumentException(
          "The adapter in " + adapterDir + " uses method '" + a.method() + "', which this Graft does not know"
              + " (it knows " + Methods.FACTORIES.keySet() + ")"));
      Map<String, Object> entry = new LinkedHashMap<>();
      entry.put(PassFactory.METHOD, a.method());
      entry.putAll(a.options());
      if (method.factory().isTargeted()) {
        entry.remove(PassFactory.LAYERS);
        entry.put(
            PassFactory.TARGETS,
            "/" + a.modules().stream().map(Pattern::quote).collect(Collectors.joining("|")) + "/");
      }
      entries.add(entry);
    }
    new PassManager(Recipe.of(entries, adapterDir.resolve(CONFIG).toString()).passes()).run(m);
    return m;
  }

  /**
   * The base with the adapter's structure ({@code rebuilt}, the adapter applied to it), every
   * trainable an input defaulting to zeros; the rebuilt model is not changed.
   */
  static Model baseWithInputs(Model rebuilt) {
    Model m = rebuilt.copy();
    m.removeMetadata(LABELS_KEY); // as the replay alone makes it
    Graph g = m.graph();
    for (Entry e : TrainableRegistry.read(m)) {
      Value v = g.initializer(e.initializer()).orElseThrow();
      Tensor t = v.initializer().orElseThrow();
      g.setInitializer(v, DenseTensor.ofRaw(v.name(), t.dataType(), t.dims(), java.nio.ByteBuffer.allocate(Math.toIntExact(t.byteSize()))));
      if (!v.isGraphInput()) g.addInput(v);
    }
    return m;
  }

  private static boolean isEmptyDir(Path p) {
    if (!Files.isDirectory(p)) return false;
    try (Stream<Path> s = Files.list(p)) {
      return s.findAny().isEmpty();
    } catch (IOException e) {
      return false;
    }
  }

}
