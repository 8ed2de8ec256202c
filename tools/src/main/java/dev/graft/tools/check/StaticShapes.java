package dev.graft.tools.check;

import static com.google.common.base.Preconditions.checkArgument;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import com.google.common.collect.ImmutableMap;
import dev.graft.ir.Dim;
import dev.graft.ir.Model;
import dev.graft.ir.Shape;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A fixed-shape model with its shape computations folded away, for engines whose importers need
 * a static graph (OpenCV's DNN). ONNX Runtime does the folding: a session at the basic
 * optimization level (constant folding and redundant-node elimination, standard ONNX ops only)
 * writes the graph it optimized ({@code optimized_model_filepath}).
 *
 * <pre>
 *   input_ids [2, 16] ─► Shape ─► Gather(1) ─► Unsqueeze ─► Slice(position_ids, 0, ·, axis 1) ─► Gather(pos table)
 *   =>  constant position ids [1, 16] ───────────────────────────────────────────────────────► Gather(pos table)
 * </pre>
 *
 * With every input dim fixed, {@code Shape} of an input is a constant, so ORT's constant folding
 * computes the whole chain (Shape, Gather, Unsqueeze, Concat, Slice, Expand, ... of the mask and
 * the position ids) into initializers. Without it, OpenCV 4.9's importer refuses BERT-family
 * exports: first at the {@code Shape} of a dynamic input, and with fixed dims at the {@code Slice}
 * of the position-id buffer ("Axes should be less than 'dim'": it mis-reads the constant's rank).
 *
 * <p>{@code graft check --runtime opencv} fixes the dims to the feeds' shapes on a temporary copy;
 * {@code graft convert IN OUT --static-shape batch_size=1,sequence_length=128} writes such a model
 * for a deployment ({@link #fixDims} then {@link #fold}).
 */
public final class StaticShapes {
  private StaticShapes() {}

  /**
   * Fixes, in place, every symbolic dim of the graph inputs to the size {@code sizes} gives its
   * name; a name the inputs do not use, or a symbolic dim left without a size, is refused (with
   * the dims the inputs have).
   */
  public static void fixDims(Model model, Map<String, Long> sizes) {
    Set<String> symbols = new LinkedHashSet<>();
    List<Value> inputs = model.graph().inputs().stream().filter(v -> !v.isInitializer()).toList();
    for (Value in : inputs) {
      in.shape().ifPresent(s -> {
        for (int i = 0; i < s.rank(); i++) if (s.dim(i) instanceof Dim.Symbolic d) symbols.add(d.name());
      });
    }
    for (Map.Entry<String, Long> e : sizes.entrySet()) {
      checkArgument(
          symbols.contains(e.getKey()),
          "The model's inputs have no dim named '%s'; their symbolic dims are %s",
          e.getKey(),
          symbols);
      checkArgument(e.getValue() > 0, "Dim '%s' must be at least 1, got %s", e.getKey(), e.getValue());
    }
    for (Value in : inputs) {
      Shape s = in.shape().orElse(null);
      if (s == null) continue;
      List<Dim> dims = new ArrayList<>();
      for (int i = 0; i < s.rank(); i++) {
        Dim d = s.dim(i);
        if (d instanceof Dim.Symbolic sym) {
          checkArgument(
              sizes.containsKey(sym.name()),
              "Input '%s' has the symbolic dim '%s', which --static-shape does not fix; add %s=N (the"
                  + " inputs' symbolic dims are %s)",
              in.name(),
              sym.name(),
              sym.name(),
              symbols);
          dims.add(Dim.of(sizes.get(sym.name())));
        } else {
          checkArgument(
              d.isFixed(),
              "Input '%s' has an unnamed dynamic dim (axis %s), which no name can fix; give the model's"
                  + " input a fixed or named dim first",
              in.name(),
              i);
          dims.add(d);
        }
      }
      long[] fixed = dims.stream().mapToLong(Dim::value).toArray();
      in.setType(Type.tensor(in.dataType().orElseThrow(), fixed));
    }
  }

  /** Parses {@code name=N,name=N}. */
  public static ImmutableMap<String, Long> parse(String spec) {
    ImmutableMap.Builder<String, Long> out = ImmutableMap.builder();
    for (String part : spec.split(",")) {
      String[] kv = part.trim().split("=", -1);
      checkArgument(
          kv.length == 2 && !kv[0].isBlank() && kv[1].trim().matches("[0-9]+"),
          "--static-shape takes NAME=SIZE pairs separated by commas (e.g. batch_size=1,sequence_length=128);"
              + " '%s' is not one",
          part);
      out.put(kv[0].trim(), Long.parseLong(kv[1].trim()));
    }
    return out.buildKeepingLast();
  }

  /** Writes {@code in} (fixed input shapes) to {@code out} with its constant subgraphs folded by ORT. */
  public static void fold(Path in, Path out) throws TargetRuntime.Refusal {
    try (OrtSession.SessionOptions o = new OrtSession.SessionOptions()) {
      o.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.BASIC_OPT);
      o.setOptimizedModelFilePath(out.toString());
      try (OrtSession s = OrtEnvironment.getEnvironment().createSession(in.toString(), o)) {
        // Opening the session optimizes the graph and writes it to out.
      }
    } catch (OrtException e) {
      throw new TargetRuntime.Refusal(
          "load", null, "ONNX Runtime could not fold the fixed-shape copy's shape computations: " + e.getMessage());
    }
  }
}
