package dev.graft.rewrite.peft;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableMultiset;
import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Dim;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Shape;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.infer.ShapeInference;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.rewrite.ConfiguredPlannedPass;
import dev.graft.rewrite.GraftTags;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.Splice;
import dev.graft.rewrite.TrainableRegistry;
import dev.graft.rewrite.TrainableRegistry.Entry;
import dev.graft.rewrite.method.Fold;
import dev.graft.rewrite.method.PeftMethod;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.SplittableRandom;

/**
 * A classification head for CNNs, built from the data's class count: global average pooling of
 * the last feature map, then a linear layer to {@code logits [batch, classes]}. The backbone's own
 * head (the pretrained classifier's pooling, linear layer and softmax) and its outputs go.
 *
 * <pre>
 *   ... ─ f [b, C, h, w] ─ (MaxPool ─ GlobalAveragePool ─ Reshape ─ MatMul ─ Softmax ─ old output)
 *     =>  ... ─ f ─ GlobalAveragePool ─ Flatten ─ Add(MatMul(·, W [C, K]), b [K]) ─ logits
 * </pre>
 *
 * The feature map is the value a config names, else the input of the graph's last
 * GlobalAveragePool (walked back through MaxPool and AveragePool, which a classifier's pooling may
 * chain before it). W starts N(0, 0.02²) from the seed, b at zero; both are trainable and recorded
 * as method {@value ClassificationHeadPass#METHOD}, module {@value ClassificationHeadPass#MODULE},
 * like the text head, so the exporter keeps them as nodes.
 */
public final class ImageHeadPass extends ConfiguredPlannedPass<ImageHeadPass.Config> {
  /** @param feature the feature-map value to pool; "" for the input of the last GlobalAveragePool */
  public record Config(int numClasses, String feature, long seed) {
    public Config {
      checkArgument(numClasses >= 2, "a classification head needs at least 2 classes, got %s", numClasses);
    }
  }

  /** The method: options classes (required), feature, seed. */
  public static final PeftMethod DEFINITION =
      PeftMethod.untargeted(
          "image-head",
          "an image classification head: global average pooling of the last feature map, then a linear layer to logits",
          List.of("classes", "feature", "seed"),
          o -> {
            if (!o.has("classes")) throw o.error("option 'classes' is required (the number of classes, 2 or more)");
            return new ImageHeadPass(new Config(o.integer("classes", 0), o.string("feature", ""), o.longInteger("seed", 0)));
          },
          Fold.kept("a new layer on the feature map"));

  public ImageHeadPass(Config config) {
    super("image-head", config);
  }

  @Override
  public PassResult execute(Model model, boolean dry) {
    if (TrainableRegistry.has(model, ClassificationHeadPass.METHOD, ClassificationHeadPass.MODULE)) {
      return PassResult.unchanged(name(), dry, "head: already has a head");
    }
    Graph g = model.graph();
    Value feature = feature(g);
    freeNegativeDims(g);
    ShapeInference.infer(model);
    Optional<Shape> shape = feature.shape();
    checkArgument(shape.isPresent() && shape.get().rank() == 4 && shape.get().dim(1).isFixed(),
        "The feature map '%s' needs a known shape [batch, channels, h, w] to size the head, got %s; give the"
            + " model's image input a fixed shape.", feature.name(), shape);
    long c = shape.get().dim(1).value();
    int k = config.numClasses();
    ImmutableMultiset<String> changes =
        ImmutableMultiset.of("head(global average pool, " + k + " classes) on " + feature.name());
    if (dry) return new PassResult(name(), changes, c * k + k, true);
    checkArgument(g.lookup(ClassificationHeadPass.LOGITS).isEmpty(),
        "The model already has a value '%s'; rename it before adding a head", ClassificationHeadPass.LOGITS);

    List<Value> oldOutputs = List.copyOf(g.outputs());
    GraphBuilder b = GraphBuilder.on(g).atEnd().prefix("/graft/head");
    Value pooled = b.op("GlobalAveragePool", feature);
    tag(b.lastNode());
    Value flat = b.op("Flatten", List.of(pooled), Attr.of("axis", 1L));
    tag(b.lastNode());
    SplittableRandom random = new SplittableRandom(config.seed() ^ 0x5DEECE66DL);
    float[] w = new float[Math.toIntExact(c * k)];
    for (int i = 0; i < w.length; i++) w[i] = (float) (random.nextGaussian() * 0.02);
    Value weight = Splice.initializer(g, "head.weight", DenseTensor.ofFloats(null, new long[] {c, k}, w));
    Value bias = Splice.initializer(g, "head.bias", DenseTensor.ofFloats(null, new long[] {k}, new float[k]));
    Value mm = b.op("MatMul", flat, weight);
    tag(b.lastNode());
    Value logits = b.op("Add", mm, bias);
    tag(b.lastNode());
    b.output(ClassificationHeadPass.LOGITS, logits);
    // A batch written as a fixed -1 (Paddle2ONNX) stays symbolic: no later step may read it as a size.
    Dim batch = shape.get().dim(0).isFixed() && shape.get().dim(0).value() <= 0 ? Dim.of("batch") : shape.get().dim(0);
    logits.setType(Type.tensor(DataType.FLOAT, Shape.of(batch, Dim.of(k))));
    // The backbone's own head goes: its outputs, then every node only they needed.
    for (Value out : oldOutputs) g.removeOutput(out);
    prune(g);
    forgetRemoved(model);
    TrainableRegistry.add(model, List.of(
        new Entry(weight.name(), ClassificationHeadPass.METHOD, ClassificationHeadPass.MODULE, "weight"),
        new Entry(bias.name(), ClassificationHeadPass.METHOD, ClassificationHeadPass.MODULE, "bias")));
    return new PassResult(name(), changes, c * k + k, false);
  }

  /**
   * Makes every dimension written as a fixed size of 0 or less (Paddle2ONNX writes a free batch
   * as -1) symbolic, on every value of {@code g}: a static -1 batch would otherwise reach the
   * loss's batch mean and flip the gradient's sign. Returns how many dimensions changed.
   */
  public static int freeNegativeDims(Graph g) {
    int changed = 0;
    for (Value v : List.copyOf(g.values())) {
      Optional<Shape> s = v.shape();
      if (s.isEmpty() || v.dataType().isEmpty()) continue;
      List<Dim> dims = new ArrayList<>();
      boolean any = false;
      for (int i = 0; i < s.get().rank(); i++) {
        Dim d = s.get().dim(i);
        if (d.isFixed() && d.value() <= 0) {
          dims.add(Dim.of(i == 0 ? "batch" : "d" + i));
          any = true;
        } else {
          dims.add(d);
        }
      }
      if (any) {
        v.setType(Type.tensor(v.dataType().get(), Shape.of(dims)));
        changed++;
      }
    }
    return changed;
  }

  private Value feature(Graph g) {
    if (!config.feature().isEmpty()) {
      return g.lookup(config.feature()).orElseThrow(() -> new IllegalArgumentException(
          "The model has no value '" + config.feature() + "' to pool; name a feature map of shape [batch, channels, h, w]."));
    }
    Node gap = null;
    for (Node n : g.nodes()) if (n.is("GlobalAveragePool") && !GraftTags.isGraft(n)) gap = n;
    checkArgument(gap != null,
        "The model has no GlobalAveragePool whose input could be its feature map; name the feature map"
            + " value in the image head's config.");
    Value v = gap.input(0);
    while (v.producer().isPresent() && (v.producer().get().is("MaxPool") || v.producer().get().is("AveragePool"))) {
      v = v.producer().get().input(0);
    }
    return v;
  }

  /** Removes nodes none of whose outputs is read or a graph output, until none is left. */
  private static void prune(Graph g) {
    boolean again = true;
    while (again) {
      again = false;
      List<Node> nodes = new ArrayList<>(g.nodes());
      for (int i = nodes.size() - 1; i >= 0; i--) {
        Node n = nodes.get(i);
        boolean used = false;
        for (Value o : n.outputs()) used |= o != null && (o.hasUses() || o.isGraphOutput());
        if (!used) {
          g.removeNode(n);
          again = true;
        }
      }
    }
    for (Value init : List.copyOf(g.initializers())) {
      if (!init.hasUses() && !init.isGraphOutput()) g.removeInitializer(init);
    }
  }

  /** Drops the trainable records of initializers the pruning removed (full fine-tuning's old head). */
  private static void forgetRemoved(Model model) {
    List<Entry> kept = new ArrayList<>();
    for (Entry e : TrainableRegistry.read(model)) {
      if (model.graph().initializer(e.initializer()).isPresent()) kept.add(e);
    }
    TrainableRegistry.write(model, kept);
  }

  private static void tag(Node n) {
    GraftTags.tag(n, ClassificationHeadPass.METHOD, ClassificationHeadPass.MODULE, "pool");
  }
}
