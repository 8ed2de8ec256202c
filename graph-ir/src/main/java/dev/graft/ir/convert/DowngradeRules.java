package dev.graft.ir.convert;

import static dev.graft.ir.convert.DowngradeRule.crossesDown;

import com.google.common.collect.ImmutableMap;
import com.google.common.collect.ImmutableSet;
import dev.graft.ir.Attr;
import dev.graft.ir.Constants;
import dev.graft.ir.Node;
import dev.graft.ir.convert.AttributeSinceRule.Added;
import dev.graft.ir.convert.AttributeSinceRule.AddedInput;
import dev.graft.ir.tensor.Tensor;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The registry of {@link OpsetDowngrade}: one rule per default-domain op Graft can carry from a
 * newer opset down to an older one (11 at the oldest). It mirrors {@link UpgradeRules}: the
 * version bumps there are bumps here, except where a newer version added something a node may
 * use (an attribute that is dropped at its default and refused otherwise, an optional input that
 * is refused), an op that did not exist yet (refused, naming the version it needs), or a form
 * that moved (axes and split sizes back to attributes, Softmax's axis, LayerNormalization
 * decomposed). An op that is not here is refused by name.
 */
final class DowngradeRules {
  private DowngradeRules() {}

  /** Ops that first appeared after opset 11 (LayerNormalization is decomposed instead). */
  static final ImmutableMap<String, Long> INTRODUCED =
      ImmutableMap.<String, Long>builder()
          .put("Celu", 12L).put("Einsum", 12L).put("GreaterOrEqual", 12L).put("LessOrEqual", 12L)
          .put("NegativeLogLikelihoodLoss", 12L).put("SoftmaxCrossEntropyLoss", 12L)
          .put("HardSwish", 14L).put("Trilu", 14L)
          .put("Bernoulli", 15L).put("CastLike", 15L).put("Optional", 15L)
          .put("OptionalGetElement", 15L).put("OptionalHasElement", 15L)
          .put("GridSample", 16L)
          .put("BlackmanWindow", 17L).put("HammingWindow", 17L).put("HannWindow", 17L)
          .put("MelWeightMatrix", 17L).put("STFT", 17L).put("SequenceMap", 17L).put("DFT", 17L)
          .build();

  private static final ImmutableMap<String, DowngradeRule> RULES = build();

  private static ImmutableMap<String, DowngradeRule> build() {
    Map<String, DowngradeRule> b = new HashMap<>();
    for (String op : UpgradeRules.VERSION_BUMPS) b.put(op, DowngradeRule.BUMP);
    for (Map.Entry<String, Long> e : INTRODUCED.entrySet()) {
      b.put(e.getKey(), new IntroducedAtRule(e.getValue(), "Keep the model at opset " + e.getValue() + " or newer."));
    }
    SoftmaxDowngradeRule softmax = new SoftmaxDowngradeRule();
    b.put("Softmax", softmax);
    b.put("LogSoftmax", softmax);
    b.put("Hardmax", softmax);
    AxesToAttributeRule at13 = new AxesToAttributeRule(13);
    b.put("ReduceSum", at13);
    b.put("Squeeze", at13);
    b.put("Unsqueeze", at13);
    AxesToAttributeRule at18 = new AxesToAttributeRule(18);
    for (String op :
        List.of("ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
            "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")) {
      b.put(op, at18);
    }
    b.put("Split", new SplitDowngradeRule());
    b.put("Dropout", new DropoutDowngradeRule());
    b.put("LayerNormalization", new LayerNormDecomposition());
    b.put("Constant", new ConstantValueRule());
    b.put("Reshape", AttributeSinceRule.attrs(new Added("allowzero", 14, "0")));
    b.put("Shape", AttributeSinceRule.attrs(new Added("start", 15, "0"), new Added("end", 15, null)));
    b.put("ScatterND", AttributeSinceRule.attrs(new Added("reduction", 16, "none")));
    b.put("ScatterElements", AttributeSinceRule.attrs(new Added("reduction", 16, "none")));
    b.put("ArgMax", AttributeSinceRule.attrs(new Added("select_last_index", 12, "0")));
    b.put("ArgMin", AttributeSinceRule.attrs(new Added("select_last_index", 12, "0")));
    b.put("GatherND", AttributeSinceRule.attrs(new Added("batch_dims", 12, "0")));
    b.put("Cast", AttributeSinceRule.attrs(new Added("saturate", 19, "1")));
    b.put("AveragePool", AttributeSinceRule.attrs(new Added("dilations", 19, null)));
    b.put("LpPool", AttributeSinceRule.attrs(new Added("ceil_mode", 18, "0"), new Added("dilations", 18, null)));
    b.put("BatchNormalization", AttributeSinceRule.attrs(new Added("training_mode", 14, "0")));
    for (String rnn : List.of("GRU", "LSTM", "RNN")) b.put(rnn, AttributeSinceRule.attrs(new Added("layout", 14, "0")));
    b.put("Pad", new AttributeSinceRule(List.of(), List.of(new AddedInput(3, "axes", 18))));
    b.put(
        "Resize",
        all(
            new ChangedAtRule(13, "roi and scales became optional and the modes changed"),
            AttributeSinceRule.attrs(
                new Added("antialias", 18, "0"),
                new Added("axes", 18, null),
                new Added("keep_aspect_ratio_policy", 18, "stretch"))));
    b.put("RoiAlign", new ChangedAtRule(16, "coordinate_transformation_mode was added with a new default"));
    QuantizeAxisRule quantize = new QuantizeAxisRule();
    b.put("QuantizeLinear", quantize);
    b.put("DequantizeLinear", quantize);
    b.put("Upsample", new ChangedAtRule(Long.MAX_VALUE, "Upsample is deprecated; Graft writes Resize"));
    return ImmutableMap.copyOf(b);
  }

  /** The rule for a default-domain op, or empty when Graft does not know how to downgrade it. */
  static Optional<DowngradeRule> forOp(String opType) {
    return Optional.ofNullable(RULES.get(opType));
  }

  static ImmutableSet<String> knownOps() {
    return RULES.keySet();
  }

  /** Every rule in turn: the first refusal wins; what each did is joined. */
  private static DowngradeRule all(DowngradeRule... rules) {
    return new DowngradeRule() {
      @Override
      public Optional<String> refusal(Node node, long from, long to, UpgradeContext ctx) {
        for (DowngradeRule r : rules) {
          Optional<String> why = r.refusal(node, from, to, ctx);
          if (why.isPresent()) return why;
        }
        return Optional.empty();
      }

      @Override
      public String apply(Node node, long from, long to, UpgradeContext ctx) {
        List<String> did = new ArrayList<>();
        for (DowngradeRule r : rules) {
          String d = r.apply(node, from, to, ctx);
          if (!d.isEmpty()) did.add(d);
        }
        return String.join(", ", did);
      }
    };
  }

  /** A schema change Graft has no rule to undo: refused when the downgrade crosses it. */
  private record ChangedAtRule(long version, String what) implements DowngradeRule {
    @Override
    public Optional<String> refusal(Node node, long from, long to, UpgradeContext ctx) {
      if (version == Long.MAX_VALUE) return Optional.of(what + ".");
      if (!crossesDown(from, to, version)) return Optional.empty();
      return Optional.of(
          node.opType() + " changed at opset " + version + " (" + what + ") and Graft has no rule"
              + " to write the older form. Keep the model at opset " + version + " or newer.");
    }

    @Override
    public String apply(Node node, long from, long to, UpgradeContext ctx) {
      return "";
    }
  }

  /** Before 12 a Constant holds its value in {@code value} (or {@code sparse_value}) only. */
  private static final class ConstantValueRule implements DowngradeRule {
    @Override
    public Optional<String> refusal(Node node, long from, long to, UpgradeContext ctx) {
      if (crossesDown(from, to, 12) && needsRewrite(node) && Constants.constantValue(node).isEmpty()) {
        return Optional.of("its value is a function attribute reference; opset 11 Constants hold a tensor.");
      }
      return Optional.empty();
    }

    @Override
    public String apply(Node node, long from, long to, UpgradeContext ctx) {
      if (!crossesDown(from, to, 12) || !needsRewrite(node)) return "";
      Tensor t = Constants.constantValue(node).orElseThrow();
      String old = node.attributes().keySet().iterator().next();
      node.removeAttr(old);
      node.setAttr(Attr.of("value", t));
      return old + " -> value tensor";
    }

    private static boolean needsRewrite(Node n) {
      return !n.hasAttr("value") && !n.hasAttr("sparse_value");
    }
  }

  /**
   * QuantizeLinear / DequantizeLinear: per-axis scales (and the {@code axis} attribute) need 13;
   * saturate came at 19, block_size and output_dtype at 21.
   */
  private static final class QuantizeAxisRule implements DowngradeRule {
    private final AttributeSinceRule later =
        AttributeSinceRule.attrs(
            new Added("saturate", 19, "1"), new Added("block_size", 21, "0"), new Added("output_dtype", 21, "0"));

    @Override
    public Optional<String> refusal(Node node, long from, long to, UpgradeContext ctx) {
      if (crossesDown(from, to, 13)) {
        Optional<Tensor> scale = Constants.valueOf(node.input(1));
        if (scale.isEmpty() || scale.get().numElements() != 1) {
          return Optional.of(
              "its scale is per-axis (or not a constant), which needs opset 13. Keep the model at"
                  + " opset 13 or newer.");
        }
      }
      return later.refusal(node, from, to, ctx);
    }

    @Override
    public String apply(Node node, long from, long to, UpgradeContext ctx) {
      String did = later.apply(node, from, to, ctx);
      if (crossesDown(from, to, 13) && node.hasAttr("axis")) {
        node.removeAttr("axis");
        did = did.isEmpty() ? "axis dropped (per-tensor scale)" : did + ", axis dropped (per-tensor scale)";
      }
      return did;
    }
  }
}
