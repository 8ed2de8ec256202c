package dev.graft.export;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.io.AtomicFiles;
import dev.graft.ir.io.SafeTensors;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.GraftTags;
import dev.graft.rewrite.PassManager;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.TrainableRegistry.Entry;
import dev.graft.rewrite.discover.LinearModule;
import dev.graft.rewrite.discover.Module;
import dev.graft.rewrite.discover.ModuleDiscovery;
import dev.graft.rewrite.method.AppliedMethods;
import dev.graft.rewrite.method.Methods;
import dev.graft.rewrite.method.PeftLayout;
import dev.graft.rewrite.peft.DoraPass;
import dev.graft.rewrite.peft.LoraPass;
import dev.graft.rewrite.recipe.PassFactory;
import dev.graft.rewrite.recipe.Recipe;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

/**
 * LoRA adapters in Hugging Face PEFT's files, so an adapter trained with Graft loads in PEFT
 * ({@code PeftModel.from_pretrained}) and one trained with PEFT loads in Graft.
 *
 * <pre>
 *   OUT_DIR/adapter_model.safetensors   base_model.model.&lt;module path&gt;.lora_A.weight  [r, in]
 *                                       base_model.model.&lt;module path&gt;.lora_B.weight  [out, r]
 *   OUT_DIR/adapter_config.json         peft_type LORA, r, lora_alpha, use_rslora, target_modules, ...
 * </pre>
 *
 * The module path is PyTorch's, read from the ONNX node name of the linear, the way exporters
 * write it: {@code /encoder/layer.0/attention/self/query/MatMul} is {@code
 * encoder.layer.0.attention.self.query}. Graft's A {@code [in, r]} and B {@code [r, out]} are
 * PEFT's {@code lora_A.weight} and {@code lora_B.weight} transposed (nn.Linear stores [out, in]);
 * the transposes run on ONNX Runtime. Only LoRA is written: other trainables (a Graft
 * classification head, norms) have no PEFT counterpart here and are listed in the report as left
 * out. The layout is the method's {@link PeftLayout} ({@link Methods}).
 */
public final class PeftAdapterFiles {
  public static final String SAFETENSORS = "adapter_model.safetensors";
  public static final String CONFIG = "adapter_config.json";
  public static final String PREFIX = "base_model.model.";
  /** PEFT's key suffix of DoRA's magnitude vector m [out] (PEFT reads it with or without ".weight"). */
  public static final String MAGNITUDE_KEY = "lora_magnitude_vector";
  /** The role under which Graft's DoRA records dm = m - ‖W‖. */
  private static final String DORA_MAGNITUDE = "dm";
  private static final Gson GSON = new GsonBuilder().setPrettyPrinting().disableHtmlEscaping().create();

  /** What {@link #write} wrote, and the trainables it left out (no PEFT counterpart). */
  public record PeftReport(Path dir, ImmutableList<String> keys, ImmutableList<String> leftOut) {}

  private PeftAdapterFiles() {}

  /** The PyTorch module path of a linear, from its node name; empty when the name carries none. */
  public static String torchPath(LinearModule l) {
    String name = l.node().name();
    int last = name.lastIndexOf('/');
    if (last <= 0) return "";
    String path = name.substring(0, last);
    while (path.startsWith("/")) path = path.substring(1);
    return path.replace('/', '.');
  }

  /**
   * The LoRA initialisation that moved part of the frozen weights into A and B ({@code pissa},
   * {@code olora}), when a LoRA pass of {@code tuned} used one. PEFT files apply to the original
   * base, whose weights are not the residuals; PEFT converts such an adapter to a rank-2r one
   * (A with the initial A, B with minus the initial B), which Graft does not write yet.
   */
  public static Optional<String> weightInit(Model tuned) {
    return AppliedMethods.read(tuned).stream()
        .filter(a -> a.method().equals(LoraPass.METHOD))
        .map(a -> String.valueOf(a.options().getOrDefault("init", "")).toLowerCase(java.util.Locale.ROOT))
        .filter(i -> i.equals("pissa") || i.equals("olora"))
        .findFirst();
  }

  /** Writes the LoRA adapter of {@code tuned} in PEFT's layout to {@code outDir}. */
  public static PeftReport write(Model tuned, Path outDir) {
    Optional<String> init = weightInit(tuned);
    checkArgument(
        init.isEmpty(),
        "LoRA init %s moved the principal part of each weight into A and B, so PEFT files over the original"
            + " base would need PEFT's conversion to a rank-2r adapter, which Graft does not write yet. Use Graft's"
            + " adapter files (they replay the init on the base) or the merged export.",
        init.orElse(""));
    boolean dora = AppliedMethods.read(tuned).stream().anyMatch(a -> a.method().equals(DoraPass.METHOD));
    boolean plain = AppliedMethods.read(tuned).stream().anyMatch(a -> a.method().equals(LoraPass.METHOD));
    checkArgument(
        !(dora && plain),
        "The tuned model has both LoRA and DoRA passes; PEFT's config says use_dora for all its modules. Export it"
            + " with Graft's adapter format instead.");
    String method = dora ? DoraPass.METHOD : LoraPass.METHOD;
    PeftLayout layout = Methods.get(method).peft().orElseThrow();
    List<AppliedMethods.Applied> lora =
        AppliedMethods.read(tuned).stream().filter(a -> a.method().equals(method)).toList();
    checkArgument(
        !lora.isEmpty(),
        "The tuned model records no LoRA or DoRA pass (model metadata '%s'); PEFT files are written for those adapters only.",
        AppliedMethods.KEY);
    Map<String, Object> first = lora.get(0).options();
    for (AppliedMethods.Applied a : lora) {
      checkArgument(
          sameScaling(a.options(), first),
          "The tuned model has LoRA passes with different rank or alpha (%s and %s); PEFT's config holds one."
              + " Export it with Graft's adapter format instead.",
          a.options(),
          first);
    }
    Map<String, LinearModule> linears = linears(tuned);
    Map<String, Tensor> tensors = new LinkedHashMap<>();
    List<String> leftOut = new ArrayList<>();
    Set<String> targets = new LinkedHashSet<>();
    Map<String, Tensor> toTranspose = new LinkedHashMap<>();
    for (Entry e : TrainableRegistry.read(tuned)) {
      if (!e.method().equals(method)) {
        leftOut.add(e.initializer() + " (" + e.method() + ")");
        continue;
      }
      LinearModule l = linears.get(e.module());
      String path = l == null ? "" : torchPath(l);
      checkArgument(
          !path.isEmpty(),
          "LoRA module '%s': its linear node '%s' has no module path in its name, so there is no PyTorch name"
              + " to write it under. PEFT files need a model exported with node names (torch.onnx does this).",
          e.module(),
          l == null ? "?" : l.node().name());
      String suffix = layout.suffixes().get(e.role());
      checkArgument(suffix != null, "LoRA parameter '%s' has role '%s', which PEFT's layout does not name", e.initializer(), e.role());
      Tensor t = tuned.graph().initializer(e.initializer()).flatMap(Value::initializer).orElseThrow();
      String key = PREFIX + path + "." + suffix;
      if (e.role().equals(DORA_MAGNITUDE)) {
        tensors.put(key, magnitude(l, t, key, true));
      } else if (layout.transposed().contains(e.role())) {
        tensors.put(key, t); // replaced by its transpose below, in this order
        toTranspose.put(key, t);
      } else {
        tensors.put(key, t.withName(key));
      }
      targets.add(path);
    }
    tensors.putAll(transposed(toTranspose));
    JsonObject config = new JsonObject();
    config.addProperty("peft_type", layout.peftType());
    config.add("base_model_name_or_path", com.google.gson.JsonNull.INSTANCE);
    config.addProperty("task_type", (String) null);
    config.addProperty("inference_mode", true);
    LoraPass.Config d = LoraPass.Config.defaults();
    config.addProperty("r", ((Number) first.getOrDefault("rank", d.rank())).intValue());
    config.addProperty("lora_alpha", ((Number) first.getOrDefault("alpha", d.alpha())).doubleValue());
    config.addProperty("use_rslora", (Boolean) first.getOrDefault("rslora", dora ? false : d.rsLora()));
    config.addProperty("lora_dropout", ((Number) first.getOrDefault("dropout", d.dropout())).doubleValue());
    config.addProperty("use_dora", dora);
    config.addProperty("bias", "none");
    config.addProperty("fan_in_fan_out", false);
    JsonArray t = new JsonArray();
    targets.forEach(t::add);
    config.add("target_modules", t);

    try {
      Files.createDirectories(outDir);
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot create " + outDir + ": " + e.getMessage(), e);
    }
    AtomicFiles.write(outDir.resolve(SAFETENSORS), tmp -> SafeTensors.write(tmp, tensors, Map.of("format", "pt")));
    AtomicFiles.writeString(outDir.resolve(CONFIG), GSON.toJson(config) + "\n");
    return new PeftReport(outDir, ImmutableList.copyOf(tensors.keySet()), ImmutableList.copyOf(leftOut));
  }

  /**
   * The base model with the PEFT LoRA adapter in {@code adapterDir} applied: LoRA on the linears
   * whose PyTorch path the adapter names, rank and alpha from its config, A and B from its tensors.
   */
  public static Model read(Path baseModel, Path adapterDir) {
    JsonObject config = readConfig(adapterDir);
    String type = config.has("peft_type") ? config.get("peft_type").getAsString() : "";
    checkArgument(type.equals("LORA"), "%s: peft_type is '%s'; Graft reads PEFT's LORA adapters only", adapterDir.resolve(CONFIG), type);
    for (String unsupported : List.of("rank_pattern", "alpha_pattern")) {
      checkArgument(
          !config.has(unsupported) || config.get(unsupported).isJsonNull() || config.getAsJsonObject(unsupported).size() == 0,
          "%s: '%s' gives modules their own rank or alpha; Graft reads adapters with one rank and alpha",
          adapterDir.resolve(CONFIG),
          unsupported);
    }
    boolean dora = config.has("use_dora") && config.get("use_dora").getAsBoolean();
    checkArgument(
        !dora || !config.has("use_rslora") || !config.get("use_rslora").getAsBoolean(),
        "%s: use_dora with use_rslora; Graft's DoRA scales by lora_alpha / r only", adapterDir.resolve(CONFIG));
    SafeTensors.Contents contents = SafeTensors.read(adapterDir.resolve(SAFETENSORS));
    Map<String, Tensor> byKey = contents.tensors();
    Model m = WorkingModels.load(baseModel);
    Map<String, LinearModule> byPath = new LinkedHashMap<>();
    for (LinearModule l : linears(m).values()) byPath.put(torchPath(l), l);

    Map<String, String> moduleOfPath = new LinkedHashMap<>();
    for (String key : byKey.keySet()) {
      boolean magnitude = dora && (key.endsWith("." + MAGNITUDE_KEY) || key.endsWith("." + MAGNITUDE_KEY + ".weight"));
      checkArgument(
          key.startsWith(PREFIX) && (key.endsWith(".lora_A.weight") || key.endsWith(".lora_B.weight") || magnitude),
          "%s holds '%s', which is not a PEFT LoRA key (%s<module path>.lora_A.weight or .lora_B.weight%s)",
          adapterDir.resolve(SAFETENSORS),
          key,
          PREFIX,
          dora ? ", or ." + MAGNITUDE_KEY + " with use_dora" : "");
      String path = key.substring(PREFIX.length(), key.lastIndexOf(".lora_"));
      LinearModule l = byPath.get(path);
      checkArgument(
          l != null,
          "The adapter adapts '%s', but %s has no linear with that module path (it has %s, ...)",
          path,
          baseModel,
          byPath.keySet().stream().limit(4).toList());
      moduleOfPath.put(path, l.name());
    }
    Tensor anyA = byKey.entrySet().stream().filter(e -> e.getKey().endsWith(".lora_A.weight")).findFirst().orElseThrow(
        () -> new IllegalArgumentException(adapterDir.resolve(SAFETENSORS) + " holds no lora_A.weight tensor")).getValue();
    int rank = Math.toIntExact(anyA.dims()[0]);
    checkArgument(!config.has("r") || config.get("r").getAsInt() == rank, "%s: r is %s but lora_A has %s rows", adapterDir, config.get("r"), rank);
    Map<String, Object> entry = new LinkedHashMap<>();
    entry.put(PassFactory.METHOD, dora ? DoraPass.METHOD : LoraPass.METHOD);
    entry.put(PassFactory.TARGETS, "/" + moduleOfPath.values().stream().map(Pattern::quote).collect(Collectors.joining("|")) + "/");
    entry.put("rank", rank);
    entry.put("alpha", config.has("lora_alpha") ? config.get("lora_alpha").getAsDouble() : (double) rank);
    if (!dora) entry.put("rslora", config.has("use_rslora") && config.get("use_rslora").getAsBoolean());
    Map<String, LinearModule> baseLinears = linears(m);
    new PassManager(Recipe.of(List.of(entry), adapterDir.resolve(CONFIG).toString()).passes()).run(m);

    Graph g = m.graph();
    Map<String, Tensor> peftTensors = new LinkedHashMap<>();
    Map<String, String> peftKeys = new LinkedHashMap<>();
    Map<String, String> peftModules = new LinkedHashMap<>();
    for (Entry e : TrainableRegistry.read(m)) {
      String path = moduleOfPath.entrySet().stream().filter(x -> x.getValue().equals(e.module())).findFirst().orElseThrow().getKey();
      if (e.role().equals(DORA_MAGNITUDE)) {
        String key = PREFIX + path + "." + MAGNITUDE_KEY;
        Tensor t = byKey.containsKey(key) ? byKey.get(key) : byKey.get(key + ".weight");
        checkArgument(t != null, "%s lacks '%s' (use_dora is true)", adapterDir.resolve(SAFETENSORS), key);
        Value v = g.initializer(e.initializer()).orElseThrow();
        Tensor dm = magnitude(baseLinears.get(e.module()), t, v.name(), false);
        g.setInitializer(v, reshape(dm, v.initializer().orElseThrow().dims(), v.name()));
        continue;
      }
      String key = PREFIX + path + "." + (e.role().equals("A") ? "lora_A.weight" : "lora_B.weight");
      Tensor t = byKey.get(key);
      checkArgument(t != null, "%s lacks '%s'", adapterDir.resolve(SAFETENSORS), key);
      peftTensors.put(e.initializer(), t);
      peftKeys.put(e.initializer(), key);
      peftModules.put(e.initializer(), e.module());
    }
    for (Map.Entry<String, Tensor> e : transposed(peftTensors).entrySet()) {
      Value v = g.initializer(e.getKey()).orElseThrow();
      Tensor graft = e.getValue();
      checkArgument(
          graft.shape().equals(v.initializer().orElseThrow().shape()),
          "PEFT tensor '%s' is %s; module '%s' needs its transpose to be %s",
          peftKeys.get(e.getKey()),
          peftTensors.get(e.getKey()).shape(),
          peftModules.get(e.getKey()),
          v.initializer().orElseThrow().shape());
      g.setInitializer(v, graft);
    }
    return m;
  }

  private static boolean sameScaling(Map<String, Object> a, Map<String, Object> b) {
    for (String k : List.of("rank", "alpha", "rslora")) {
      if (!java.util.Objects.equals(a.get(k), b.get(k))) return false;
    }
    return true;
  }

  private static Map<String, LinearModule> linears(Model m) {
    Map<String, LinearModule> out = new LinkedHashMap<>();
    for (Module mod : ModuleDiscovery.discover(m)) if (mod instanceof LinearModule l) out.put(l.name(), l);
    return out;
  }

  /**
   * PEFT's magnitude m [out] from Graft's dm ({@code toPeft}: m = ‖W‖ + dm), or dm from m
   * (dm = m - ‖W‖), with ‖W‖ the norm of each output feature of the frozen weight of {@code l},
   * all on ONNX Runtime.
   */
  private static Tensor magnitude(LinearModule l, Tensor t, String name, boolean toPeft) {
    Tensor w = GraftTags.origin(l.weight()).initializer().orElseThrow(
        () -> new IllegalArgumentException("DoRA module '" + l.name() + "': its weight is not an initializer"));
    boolean transposed = l.node().is("Gemm") && l.node().attrLong("transB", 0) == 1; // W is [out, in]
    GraphBuilder b = GraphBuilder.create("magnitude");
    Value wv = b.input("w", w.dataType(), w.dims()[0], w.dims()[1]);
    Value x = b.input("x", t.dataType(), (Object[]) java.util.Arrays.stream(t.dims()).boxed().toArray(Long[]::new));
    Value norm = b.op("ReduceL2", List.of(wv), dev.graft.ir.Attr.ints("axes", transposed ? 1 : 0), dev.graft.ir.Attr.of("keepdims", 0L));
    Value flat = b.op("Reshape", x, b.int64s(-1));
    b.output("y", b.op(toPeft ? "Add" : "Sub", toPeft ? norm : flat, toPeft ? flat : norm));
    b.typed(b.graph().outputs().get(0), t.dataType(), l.outFeatures());
    Tensor y = OrtEval.run(b.model(17), Map.of("w", w, "x", t)).get("y");
    checkArgument(y.numElements() == l.outFeatures(), "'%s' has %s elements; module '%s' has %s output features",
        name, t.numElements(), l.name(), l.outFeatures());
    return y.withName(name);
  }

  private static Tensor reshape(Tensor t, long[] dims, String name) {
    return dev.graft.ir.tensor.DenseTensor.ofFloats(name, dims, t.toFloatArray());
  }

  /**
   * Each 2-D tensor transposed, by name, on ONNX Runtime: all in one graph and one run (a session
   * per tensor cost 0.8 s for LoRA on 46 linears: 92 session files and plans).
   */
  private static Map<String, Tensor> transposed(Map<String, Tensor> tensors) {
    if (tensors.isEmpty()) return Map.of();
    GraphBuilder b = GraphBuilder.create("transpose");
    Map<String, Tensor> feeds = new LinkedHashMap<>();
    List<String> names = new ArrayList<>(tensors.keySet());
    for (int i = 0; i < names.size(); i++) {
      Tensor t = tensors.get(names.get(i));
      checkArgument(t.dims().length == 2, "'%s' is %s; LoRA matrices are 2-D", names.get(i), t.shape());
      Value x = b.input("x" + i, t.dataType(), t.dims()[0], t.dims()[1]);
      b.output("y" + i, b.op("Transpose", x));
      b.typed(b.graph().outputs().get(i), t.dataType(), t.dims()[1], t.dims()[0]);
      feeds.put("x" + i, t);
    }
    Map<String, Tensor> y = OrtEval.runUnoptimized(b.model(17), feeds, "the transposes of the LoRA tensors");
    Map<String, Tensor> out = new LinkedHashMap<>();
    for (int i = 0; i < names.size(); i++) out.put(names.get(i), y.get("y" + i).withName(names.get(i)));
    return out;
  }

  private static JsonObject readConfig(Path dir) {
    Path file = dir.resolve(CONFIG);
    checkArgument(Files.isRegularFile(file), "%s has no %s; is it a PEFT adapter folder?", dir, CONFIG);
    try {
      JsonElement e = JsonParser.parseString(Files.readString(file));
      checkArgument(e.isJsonObject(), "%s must hold a JSON object", file);
      return e.getAsJsonObject();
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot read " + file + ": " + e.getMessage(), e);
    } catch (JsonParseException e) {
      throw new IllegalArgumentException(file + " is not valid JSON: " + e.getMessage(), e);
    }
  }
}
