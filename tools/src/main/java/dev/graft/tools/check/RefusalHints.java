package dev.graft.tools.check;

import com.google.common.collect.ImmutableMap;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * What a runtime's refusal names, and the export option that avoids it. The operators come from
 * the runtimes' own messages (OpenCV: {@code Node [LayerNormalization@ai.onnx]:(onnx_node!name)};
 * ORT: {@code Could not find an implementation for LayerNormalization(17) node with name '...'});
 * the hints list what Graft can write instead.
 */
public final class RefusalHints {
  private static final Pattern OPENCV_NODE = Pattern.compile("Node \\[([A-Za-z0-9_]+)@[^\\]]*\\]");
  private static final Pattern ORT_IMPL = Pattern.compile("implementation for ([A-Za-z0-9_]+)\\(\\d+\\)");

  /** op (or a cause) -> what to do about it. */
  private static final ImmutableMap<String, String> HINTS =
      ImmutableMap.<String, String>builder()
          .put("LayerNormalization",
              "LayerNormalization needs opset 17; export with --opset 13 (or lower), which writes it as"
                  + " ReduceMean/Sub/Pow/Sqrt/Div")
          .put("MatMulInteger", "int8 weights need MatMulInteger; export without --quantize")
          .put("DynamicQuantizeLinear", "int8 activations need DynamicQuantizeLinear; export without --quantize")
          .put("DequantizeLinear", "quantised weights need DequantizeLinear; export without --quantize")
          .put("Cast", "fp16 weights are read through Cast; export without --fp16")
          .put("Shape", "the graph computes shapes at run time; write a static one with graft convert IN OUT"
              + " --static-shape NAME=SIZE,... (fixed dims, shape computations folded)")
          .put("Slice", "a shape computation feeds this Slice; write a static graph with graft convert IN OUT"
              + " --static-shape NAME=SIZE,... (fixed dims, shape computations folded)")
          .put("adapter", "serve the merged export there instead (graft export TUNED OUT)")
          .put("opset", "the runtime is older than the model's opset; export with --opset N (13 or newer)")
          .put("ir_version", "the runtime is older than the model's IR version; export with --ir-version N")
          .build();

  private RefusalHints() {}

  /** The operator a runtime's message names, or null. */
  public static String opIn(String message) {
    if (message == null) return null;
    for (Pattern p : new Pattern[] {OPENCV_NODE, ORT_IMPL}) {
      Matcher m = p.matcher(message);
      if (m.find()) return m.group(1);
    }
    return null;
  }

  /** The export option that avoids a refusal, when Graft has one. */
  public static Optional<String> hint(String op, String message) {
    if (op != null && HINTS.containsKey(op)) return Optional.of(HINTS.get(op));
    String lower = message == null ? "" : message.toLowerCase(java.util.Locale.ROOT);
    if (lower.contains("ir_version") || lower.contains("ir version")) return Optional.of(HINTS.get("ir_version"));
    if (lower.contains("opset")) return Optional.of(HINTS.get("opset"));
    if (lower.contains("cannot serve onnx runtime adapter files")) return Optional.of(HINTS.get("adapter"));
    return Optional.empty();
  }
}
