package dev.graft.rewrite.peft;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Constants;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.ModulePass;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.TrainableRegistry.Entry;
import dev.graft.rewrite.discover.EmbeddingModule;
import dev.graft.rewrite.discover.LinearModule;
import dev.graft.rewrite.discover.Module;
import dev.graft.rewrite.discover.NormModule;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Collectors;

/**
 * Full fine-tuning: the parameters of the chosen modules train themselves, with no delta beside
 * them. The graph does not change; only the model's metadata records the parameters as trainable.
 *
 * <pre>
 *   y = MatMul(x, W) + b                      =>  the same graph; W and b trainable
 *   y = LayerNormalization(x, gamma, beta)    =>  the same graph; gamma and beta trainable
 *   y = Gather(table, ids)                    =>  the same graph; table trainable
 * </pre>
 *
 * The parameters are those of every targeted linear (weight, bias), norm (scale, shift) and
 * embedding (table); the default target {@code **} takes every one discovered, i.e. every float
 * parameter of the model (constants of the computation, such as epsilon or the attention scale,
 * are not parameters and stay frozen). A weight stored as a Constant node is lifted to an
 * initializer of the same name, since only initializers train. A tied tensor (read by two modules)
 * is recorded once, under the first module.
 *
 * <p>It is the baseline every PETL table has, and the way to pretrain a small model from scratch.
 * It is trivially identity at initialisation (nothing is inserted), and "folding" is a no-op: the
 * trained weights are the model's own, so a merged export keeps them where they are and forgets
 * only the trainable records ({@link #METHOD} is folded in place).
 */
public final class FullFineTuningPass extends ModulePass<Module> {
  public static final String METHOD = "full";

  public FullFineTuningPass(Targets targets) {
    super(targets);
  }

  @Override
  public String name() {
    return METHOD;
  }

  @Override
  protected List<Module> candidates(ImmutableList<Module> modules) {
    return modules.stream()
        .filter(m -> m instanceof LinearModule || m instanceof NormModule || m instanceof EmbeddingModule)
        .toList();
  }

  @Override
  protected String kindDescription() {
    return "linear, norm or embedding";
  }

  @Override
  protected long parameters(Module t) {
    long n = 0;
    for (Value v : parameterValues(t).values()) {
      n += Constants.valueOf(v).map(Tensor::numElements).orElse(0L);
    }
    return n;
  }

  @Override
  protected List<Entry> apply(Model model, Module t) {
    Graph g = model.graph();
    Set<String> already =
        TrainableRegistry.read(model).stream().map(Entry::initializer).collect(Collectors.toSet());
    List<Entry> out = new ArrayList<>();
    for (Map.Entry<String, Value> p : parameterValues(t).entrySet()) {
      Value v = p.getValue();
      Value init = asInitializer(g, v, t.name(), p.getKey());
      if (init == null || already.contains(init.name())) continue;
      out.add(new Entry(init.name(), METHOD, t.name(), p.getKey()));
      already.add(init.name());
    }
    return out;
  }

  /** Role to value: weight and bias, gamma and beta, table. Values that are not constants are left out. */
  private static Map<String, Value> parameterValues(Module t) {
    Map<String, Value> out = new LinkedHashMap<>();
    if (t instanceof LinearModule l) {
      out.put("weight", l.weight());
      l.bias().ifPresent(b -> out.put("bias", b));
    } else if (t instanceof NormModule n) {
      out.put("gamma", n.gamma());
      if (n.beta() != null) out.put("beta", n.beta());
    } else if (t instanceof EmbeddingModule e) {
      out.put("table", e.table());
    }
    out.values().removeIf(v -> v == null || v.isGraphInput() || Constants.valueOf(v).isEmpty());
    return out;
  }

  /**
   * The initializer holding {@code v}: {@code v} itself, or a new initializer that replaces the
   * Constant node producing it (keeping the value's name, so later passes and exports see one tensor).
   */
  private static Value asInitializer(Graph g, Value v, String module, String role) {
    if (v.isInitializer()) {
      checkArgument(
          v.initializer().map(x -> x.dataType().isFloatingPoint()).orElse(false),
          "Module '%s': its %s '%s' is %s, not a floating-point tensor; full fine-tuning trains float"
              + " parameters only. Leave the module out of the targets.",
          module,
          role,
          v.name(),
          v.initializer().map(Tensor::dataType).orElse(null));
      return v;
    }
    Optional<Node> producer = v.producer();
    if (producer.isEmpty() || !producer.get().is("Constant")) return null;
    Tensor t = Constants.valueOf(v).orElseThrow();
    if (!t.dataType().isFloatingPoint()) return null;
    String name = v.name();
    Value init = g.addInitializer(g.freshName(name + "_lifted"), t.withName(name));
    init.setType(v.type().orElseGet(() -> Type.tensor(t.dataType(), t.shape())));
    v.replaceAllUsesWith(init, true);
    g.removeNode(producer.get());
    g.rename(init, name);
    return init;
  }
}
