package dev.graft.rewrite.peft;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMultiset;
import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Dim;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Shape;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.rewrite.ConfiguredPlannedPass;
import dev.graft.rewrite.GraftTags;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.Splice;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.TrainableRegistry.Entry;
import java.util.List;
import java.util.Optional;
import java.util.SplittableRandom;
import java.util.stream.Collectors;

/**
 * A classification head for encoders that end at hidden states: pool the sequence, then a linear
 * layer to {@code logits [batch, numClasses]}.
 *
 * <pre>
 *   h [b, s, d], mask [b, s]
 *   MEAN:  pooled = ReduceSum(h * m, 1) / max(ReduceSum(m, 1), 1e-9),  m = Unsqueeze(Cast(mask), 2)
 *   FIRST: pooled = Gather(h, 0, axis 1)
 *   MAX:   pooled = ReduceMax(h + (1 - m) * -1e9, 1)
 *   logits = Add(MatMul(pooled, W [d, C]), b [C])
 * </pre>
 *
 * W starts normal with std 0.02 (BERT's initializer range), b at zero; both are trainable. The
 * hidden-state output stays unless {@link Config#keepHiddenOutput} is false.
 */
public final class ClassificationHeadPass extends ConfiguredPlannedPass<ClassificationHeadPass.Config> {
  public static final String METHOD = "head";
  public static final String MODULE = "head";
  public static final String LOGITS = "logits";

  public enum Pooling {
    MEAN,
    FIRST,
    MAX
  }

  /**
   * @param hiddenOutput the graph output holding hidden states; "" for the only rank-3 output
   * @param maskInput the attention-mask input MEAN and MAX pooling read
   */
  public record Config(
      int numClasses, Pooling pooling, String hiddenOutput, String maskInput, boolean keepHiddenOutput, long seed) {
    public Config {
      // 1 output: the regression head of the regress task.
      checkArgument(numClasses >= 1, "a head needs at least 1 output, got %s", numClasses);
    }

    public static Config of(int numClasses, Pooling pooling) {
      return new Config(numClasses, pooling, "", "attention_mask", true, 0);
    }

    public Config withKeepHiddenOutput(boolean keep) {
      return new Config(numClasses, pooling, hiddenOutput, maskInput, keep, seed);
    }

    public Config withSeed(long s) {
      return new Config(numClasses, pooling, hiddenOutput, maskInput, keepHiddenOutput, s);
    }
  }

  public ClassificationHeadPass(Config config) {
    super("classification-head", config);
  }

  /**
   * The head's weight and bias initializer names in {@code m}, in that order, read from its
   * trainable registry (the names are fresh, so they may differ from "head.weight" and
   * "head.bias"); empty when the model has no head.
   */
  public static ImmutableList<String> parameterNames(Model m) {
    return TrainableRegistry.read(m).stream()
        .filter(e -> e.method().equals(METHOD) && e.module().equals(MODULE))
        .map(Entry::initializer)
        .collect(ImmutableList.toImmutableList());
  }

  @Override
  public PassResult execute(Model model, boolean dry) {
    Graph g = model.graph();
    if (TrainableRegistry.has(model, METHOD, MODULE)) return PassResult.unchanged(name(), dry, MODULE + ": already has a head");
    Value hidden = hiddenOutput(g);
    long d = hiddenSize(hidden);
    int c = config.numClasses();
    long params = d * c + c;
    ImmutableMultiset<String> changes =
        ImmutableMultiset.of("head(" + config.pooling().name().toLowerCase() + ", " + c + " classes) on " + hidden.name());
    if (dry) return new PassResult(name(), changes, params, true);

    checkArgument(g.lookup(LOGITS).isEmpty(), "The model already has a value '%s'; rename it before adding a head", LOGITS);
    GraphBuilder b = GraphBuilder.on(g).atEnd().prefix("/graft/head");
    Value pooled = pool(b, model, hidden);
    SplittableRandom random = new SplittableRandom(config.seed() ^ 0x5DEECE66DL);
    float[] w = new float[Math.toIntExact(d * c)];
    for (int i = 0; i < w.length; i++) w[i] = (float) (random.nextGaussian() * 0.02);
    Value weight = Splice.initializer(g, "head.weight", DenseTensor.ofFloats(null, new long[] {d, c}, w));
    Value bias = Splice.initializer(g, "head.bias", DenseTensor.ofFloats(null, new long[] {c}, new float[c]));
    Value mm = b.op("MatMul", pooled, weight);
    tag(b);
    Value logits = b.op("Add", mm, bias);
    tag(b);
    b.output(LOGITS, logits);
    Dim batch = hidden.shape().map(s -> s.dim(0)).orElse(Dim.of("batch"));
    logits.setType(dev.graft.ir.Type.tensor(DataType.FLOAT, Shape.of(batch, Dim.of(c))));
    if (!config.keepHiddenOutput()) g.removeOutput(hidden);
    // Every node the head made carries the tag, helpers included, so discovery skips them all.
    for (dev.graft.ir.Node n : g.nodes()) {
      if (n.name().startsWith("/graft/head/") && !GraftTags.isGraft(n)) GraftTags.tag(n, METHOD, MODULE, "pool");
    }
    TrainableRegistry.add(
        model, List.of(new Entry(weight.name(), METHOD, MODULE, "weight"), new Entry(bias.name(), METHOD, MODULE, "bias")));
    return new PassResult(name(), changes, params, false);
  }

  private Value pool(GraphBuilder b, Model model, Value h) {
    Graph g = model.graph();
    if (config.pooling() == Pooling.FIRST) {
      Value first = b.op("Gather", List.of(h, b.scalar(0L)), Attr.of("axis", 1L));
      tag(b);
      return first;
    }
    Value mask =
        g.inputs().stream()
            .filter(v -> v.name().equals(config.maskInput()))
            .findFirst()
            .orElseThrow(
                () ->
                    new IllegalArgumentException(
                        config.pooling()
                            + " pooling reads the attention mask input '"
                            + config.maskInput()
                            + "', which the model lacks. Its inputs are "
                            + g.inputs().stream().map(Value::name).collect(Collectors.toList())
                            + "; name the mask input or use FIRST pooling."));
    Value m = b.op("Cast", List.of(mask), Attr.of("to", (long) DataType.FLOAT.code()));
    tag(b);
    Value m3 = Splice.unsqueeze(b, model, m, 2);
    tag(b);
    if (config.pooling() == Pooling.MEAN) {
      Value sum = Splice.reduceSum(b, model, b.op("Mul", h, m3), false, 1);
      tag(b);
      Value count = Splice.reduceSum(b, model, m3, false, 1);
      tag(b);
      Value safe = b.op("Max", count, b.scalar(1e-9f));
      tag(b);
      Value mean = b.op("Div", sum, safe);
      tag(b);
      return mean;
    }
    Value penalty = b.op("Mul", b.op("Sub", b.scalar(1f), m3), b.scalar(-1e9f));
    tag(b);
    Value max = Splice.reduceMax(b, model, b.op("Add", h, penalty), false, 1);
    tag(b);
    return max;
  }

  private Value hiddenOutput(Graph g) {
    if (!config.hiddenOutput().isEmpty()) {
      return g.outputs().stream()
          .filter(v -> v.name().equals(config.hiddenOutput()))
          .findFirst()
          .orElseThrow(
              () ->
                  new IllegalArgumentException(
                      "The model has no output '" + config.hiddenOutput() + "'; its outputs are "
                          + g.outputs().stream().map(Value::name).collect(Collectors.toList())));
    }
    List<Value> rank3 =
        g.outputs().stream().filter(v -> v.shape().map(Shape::rank).orElse(-1) == 3).collect(Collectors.toList());
    checkArgument(
        rank3.size() == 1,
        "Cannot tell which output holds the hidden states: the rank-3 outputs are %s of %s. Name it in the head's config.",
        rank3.stream().map(Value::name).collect(Collectors.toList()),
        g.outputs().stream().map(Value::name).collect(Collectors.toList()));
    return rank3.get(0);
  }

  private static long hiddenSize(Value hidden) {
    Optional<Dim> last = hidden.shape().map(s -> s.dim(s.rank() - 1));
    checkArgument(
        last.isPresent() && last.get().isFixed(),
        "The hidden-state output '%s' needs a fixed last dimension (the hidden size), got %s",
        hidden.name(),
        hidden.shape());
    return last.get().value();
  }

  /** Tags the node the builder made last, and any constant-free helpers before it stay untagged. */
  private static void tag(GraphBuilder b) {
    GraftTags.tag(b.lastNode(), METHOD, MODULE, "pool");
  }
}
