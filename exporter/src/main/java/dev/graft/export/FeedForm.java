package dev.graft.export;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;

/**
 * The feed form of a model: graph inputs that have an initializer default ("overridable
 * initializers", as in {@code base_with_lora_inputs.onnx}) lose the default and become plain
 * inputs that every run must feed.
 *
 * <pre>
 *   inputs: input_ids, ..., L.lora_B         inputs: input_ids, ..., L.lora_B
 *   initializers: ..., L.lora_B = 0    =>    initializers: ...            (L.lora_B: fed)
 * </pre>
 *
 * Why: ONNX Runtime for Node.js (onnxruntime-node 1.30.0) has no LoRA adapter API, so an adapter
 * is served by feeding its tensors as the inputs they name. But the Node binding passes ORT only
 * the feeds named in {@code session.inputNames} ({@code InferenceSessionWrap::Run} loops over its
 * input names), and ORT's input names leave out overridable initializers. A feed for one is
 * dropped without a word and the run computes the defaults (the base model). In the feed form the
 * adapter's tensors are ordinary inputs, so Node passes them on. The outputs are the same as ORT's
 * adapter API gives on the original file; only the no-adapter default is gone.
 */
public final class FeedForm {
  private FeedForm() {}

  /**
   * Drops the defaults of the inputs named in {@code names} (every defaulted input when {@code
   * names} is null), in place; returns the inputs changed. A name that is no input with a default
   * is refused.
   */
  public static ImmutableList<String> apply(Model model, Collection<String> names) {
    Graph g = model.graph();
    List<Value> change = new ArrayList<>();
    for (Value in : g.inputs()) {
      if (in.isInitializer() && (names == null || names.contains(in.name()))) change.add(in);
    }
    if (names != null) {
      for (String n : names) {
        checkArgument(
            change.stream().anyMatch(v -> v.name().equals(n)),
            "'%s' is no graph input with a default value (an initializer listed among the inputs) in"
                + " this model, so there is no default to drop",
            n);
      }
    }
    for (Value v : change) g.dropInputDefault(v);
    return change.stream().map(Value::name).collect(ImmutableList.toImmutableList());
  }
}
