package dev.graft.trainer.train;

import static com.google.common.base.Preconditions.checkArgument;

import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Dim;
import dev.graft.ir.Shape;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalLong;

/**
 * The training objective, appended to a forward graph as standard ONNX ops: a scalar (rank-0)
 * loss from the logits and a labels input. Both forms of cross-entropy reduce over the elements
 * not ignored, like PyTorch's {@code CrossEntropyLoss(reduction="mean")}.
 */
public sealed interface Loss
    permits Loss.SoftmaxCrossEntropy, Loss.MeanSquaredError, Loss.Huber, Loss.MultipleNegativesRanking {

  /** The type of the labels input for logits typed {@code logits}. */
  Type labelType(Value logits);

  /** Appends the loss nodes; returns the rank-0 float loss. */
  Value append(GraphBuilder b, Value logits, Value labels);

  /** Softmax cross-entropy over the last axis of the logits, no smoothing, no ignored label. */
  static SoftmaxCrossEntropy crossEntropy() {
    return new SoftmaxCrossEntropy(0.0, OptionalLong.empty(), CrossEntropyForm.AUTO);
  }

  static MeanSquaredError meanSquaredError() {
    return new MeanSquaredError();
  }

  /** The Huber loss with threshold {@code delta}: quadratic near zero, linear beyond. */
  static Huber huber(double delta) {
    return new Huber(delta);
  }

  /** In-batch-negatives ranking of sentence embeddings with similarity scale {@code scale}. */
  static MultipleNegativesRanking multipleNegativesRanking(double scale) {
    return new MultipleNegativesRanking(scale);
  }

  /** How cross-entropy is written in the graph. */
  enum CrossEntropyForm {
    /** The SoftmaxCrossEntropyLoss operator where it can (no label smoothing), else LOG_SOFTMAX. */
    AUTO,
    /** The SoftmaxCrossEntropyLoss operator (opset 12+); it has no label smoothing. */
    OPERATOR,
    /** LogSoftmax, a one-hot (smoothed) target and reductions. */
    LOG_SOFTMAX
  }

  /**
   * Cross-entropy of {@code Softmax(logits)} (classes on the last axis) against int64 labels
   * shaped like the logits without that axis.
   *
   * <pre>
   *   target = (1 - s) * onehot(label) + s / C             s = labelSmoothing
   *   loss   = sum_i keep_i * -sum_c target_ic * LogSoftmax(logits_i)_c  /  max(1, sum_i keep_i)
   *            keep_i = (label_i != ignoreIndex)
   * </pre>
   */
  record SoftmaxCrossEntropy(double labelSmoothing, OptionalLong ignoreIndex, CrossEntropyForm form)
      implements Loss {
    public SoftmaxCrossEntropy {
      checkArgument(
          labelSmoothing >= 0 && labelSmoothing < 1,
          "label smoothing must lie in [0, 1), got %s",
          labelSmoothing);
      checkArgument(
          !(form == CrossEntropyForm.OPERATOR && labelSmoothing > 0),
          "The SoftmaxCrossEntropyLoss operator has no label smoothing (asked for %s); use the"
              + " LOG_SOFTMAX or AUTO form.",
          labelSmoothing);
    }

    public SoftmaxCrossEntropy withLabelSmoothing(double s) {
      return new SoftmaxCrossEntropy(s, ignoreIndex, form);
    }

    public SoftmaxCrossEntropy withIgnoreIndex(long index) {
      return new SoftmaxCrossEntropy(labelSmoothing, OptionalLong.of(index), form);
    }

    public SoftmaxCrossEntropy withForm(CrossEntropyForm f) {
      return new SoftmaxCrossEntropy(labelSmoothing, ignoreIndex, f);
    }

    @Override
    public Type labelType(Value logits) {
      Shape s = logitsShape(logits);
      return Type.tensor(DataType.INT64, Shape.of(s.dims().subList(0, s.rank() - 1)));
    }

    @Override
    public Value append(GraphBuilder b, Value logits, Value labels) {
      Shape s = logitsShape(logits);
      Dim classDim = s.dim(s.rank() - 1);
      checkArgument(
          classDim.isFixed(),
          "Cross-entropy needs the number of classes: the last axis of logits '%s' %s is not a"
              + " fixed size. Give the logits output a static class dimension.",
          logits.name(),
          s);
      long classes = classDim.value();
      // Rank > 2 (token classification): flatten to [N, C] and [N].
      Value x = logits;
      Value y = labels;
      if (s.rank() != 2) {
        x = b.op("Reshape", x, b.int64s(-1, classes));
        y = b.op("Reshape", y, b.int64s(-1));
      }
      boolean operator =
          form == CrossEntropyForm.OPERATOR
              || (form == CrossEntropyForm.AUTO && labelSmoothing == 0);
      return operator ? withOperator(b, x, y) : withLogSoftmax(b, x, y, classes);
    }

    private Value withOperator(GraphBuilder b, Value x, Value y) {
      List<Attr> attrs = new ArrayList<>();
      attrs.add(Attr.of("reduction", "mean"));
      ignoreIndex.ifPresent(i -> attrs.add(Attr.of("ignore_index", i)));
      return b.op("SoftmaxCrossEntropyLoss", List.of(x, y), attrs.toArray(Attr[]::new));
    }

    private Value withLogSoftmax(GraphBuilder b, Value x, Value y, long classes) {
      Value logProb = b.op("LogSoftmax", List.of(x), Attr.of("axis", 1L));
      long[] range = new long[(int) classes];
      for (int c = 0; c < classes; c++) range[c] = c;
      Value oneHot =
          b.op(
              "Cast",
              List.of(b.op("Equal", b.op("Unsqueeze", y, b.int64s(1)), b.int64s(range))),
              Attr.of("to", (long) DataType.FLOAT.code()));
      Value target = oneHot;
      if (labelSmoothing > 0) {
        target =
            b.op(
                "Add",
                b.op("Mul", oneHot, b.scalar((float) (1 - labelSmoothing))),
                b.scalar((float) (labelSmoothing / classes)));
      }
      Value perRow =
          b.op(
              "Neg",
              b.op("ReduceSum", List.of(b.op("Mul", target, logProb), b.int64s(1)), Attr.of("keepdims", 0L)));
      if (ignoreIndex.isEmpty()) {
        return b.op("ReduceMean", List.of(perRow), Attr.of("keepdims", 0L));
      }
      Value keep =
          b.op(
              "Cast",
              List.of(b.op("Not", b.op("Equal", y, b.scalar(ignoreIndex.getAsLong())))),
              Attr.of("to", (long) DataType.FLOAT.code()));
      Value total = b.op("ReduceSum", List.of(b.op("Mul", perRow, keep)), Attr.of("keepdims", 0L));
      // All ignored: loss 0 rather than 0/0, so a padded micro-batch cannot poison the update.
      Value count =
          b.op("Max", b.op("ReduceSum", List.of(keep), Attr.of("keepdims", 0L)), b.scalar(1f));
      return b.op("Div", total, count);
    }
  }

  /** Mean over every element of {@code (logits - labels)^2}; labels are float, shaped like the logits. */
  record MeanSquaredError() implements Loss {
    @Override
    public Type labelType(Value logits) {
      return Type.tensor(DataType.FLOAT, logitsShape(logits));
    }

    @Override
    public Value append(GraphBuilder b, Value logits, Value labels) {
      Value d = b.op("Sub", logits, labels);
      return b.op("ReduceMean", List.of(b.op("Mul", d, d)), Attr.of("keepdims", 0L));
    }
  }

  /**
   * Mean over every element of the Huber loss of {@code d = logits - labels} (PyTorch's
   * {@code HuberLoss(delta)}); labels are float, shaped like the logits.
   *
   * <pre>
   *   |d| = Max(d, -d)
   *   l   = |d| < delta ? 0.5 d^2 : delta * (|d| - 0.5 delta)
   * </pre>
   */
  record Huber(double delta) implements Loss {
    public Huber {
      checkArgument(delta > 0, "the Huber delta must be positive, got %s", delta);
    }

    @Override
    public Type labelType(Value logits) {
      return Type.tensor(DataType.FLOAT, logitsShape(logits));
    }

    @Override
    public Value append(GraphBuilder b, Value logits, Value labels) {
      Value d = b.op("Sub", logits, labels);
      Value abs = b.op("Max", d, b.op("Neg", d));
      Value quadratic = b.op("Mul", b.op("Mul", d, d), b.scalar(0.5f));
      Value linear = b.op("Mul", b.op("Sub", abs, b.scalar((float) (0.5 * delta))), b.scalar((float) delta));
      Value small = b.op("Less", abs, b.scalar((float) delta));
      return b.op("ReduceMean", List.of(b.op("Where", small, quadratic, linear)), Attr.of("keepdims", 0L));
    }
  }

  /**
   * The multiple-negatives ranking loss of sentence-transformers ({@code
   * MultipleNegativesRankingLoss}, Henderson et al. 2017) over a batch of {@code n} pairs laid out
   * as {@code 2n} embeddings, the anchors first, then their positives in the same order. Each
   * anchor must pick its own positive among all the batch's positives by scaled cosine
   * similarity. The labels are group ids {@code [n]}: a positive of another pair in the same
   * group (the same class, when pairs are formed within a label as SetFit does) is no negative,
   * so it is masked out; pairs of distinct groups give the plain loss.
   *
   * <pre>
   *   e = embeddings [2n, d] / max(||.||, 1e-12);  a, p = Gather(Reshape(e, [2, n, d]), 0 | 1)
   *   s = scale * a p^T [n, n];   s_ij -= 1e4 where group_i == group_j and i != j
   *   loss = SoftmaxCrossEntropyLoss(s, [0, 1, ..., n-1])
   * </pre>
   */
  record MultipleNegativesRanking(double scale) implements Loss {
    public MultipleNegativesRanking {
      checkArgument(scale > 0, "the similarity scale must be positive, got %s", scale);
    }

    @Override
    public Type labelType(Value embeddings) {
      logitsShape(embeddings);
      return Type.tensor(DataType.INT64, Shape.of(Dim.of("pairs")));
    }

    @Override
    public Value append(GraphBuilder b, Value embeddings, Value groups) {
      Shape s = logitsShape(embeddings);
      checkArgument(s.rank() == 2 && s.dim(1).isFixed(),
          "The ranking loss reads embeddings [2n, d] with a fixed d, but '%s' is %s", embeddings.name(), s);
      long d = s.dim(1).value();
      Value sq = b.op("ReduceSum", List.of(b.op("Mul", embeddings, embeddings), b.int64s(1)), Attr.of("keepdims", 1L));
      Value norm = b.op("Max", b.op("Sqrt", sq), b.scalar(1e-12f));
      Value unit = b.op("Div", embeddings, norm);
      Value pairs = b.op("Reshape", unit, b.int64s(2, -1, d));
      Value anchors = b.op("Gather", List.of(pairs, b.scalar(0L)), Attr.of("axis", 0L));
      Value positives = b.op("Gather", List.of(pairs, b.scalar(1L)), Attr.of("axis", 0L));
      Value scores =
          b.op("Mul", b.op("MatMul", anchors, b.op("Transpose", List.of(positives), Attr.ints("perm", 1, 0))),
              b.scalar((float) scale));
      // Same group, other pair: not a negative. No gradient flows through the mask.
      Value same = b.op("Equal", b.op("Unsqueeze", groups, b.int64s(1)), b.op("Unsqueeze", groups, b.int64s(0)));
      Value n = b.op("Gather", List.of(b.op("Shape", List.of(groups)), b.scalar(0L)), Attr.of("axis", 0L));
      Value index = b.op("Range", b.scalar(0L), n, b.scalar(1L));
      Value diagonal = b.op("Equal", b.op("Unsqueeze", index, b.int64s(1)), b.op("Unsqueeze", index, b.int64s(0)));
      Value masked = b.op("And", same, b.op("Not", diagonal));
      Value penalty =
          b.op("Mul", b.op("Cast", List.of(masked), Attr.of("to", (long) DataType.FLOAT.code())), b.scalar(-1e4f));
      Value logits = b.op("Add", scores, penalty);
      return b.op("SoftmaxCrossEntropyLoss", List.of(logits, index), Attr.of("reduction", "mean"));
    }
  }

  private static Shape logitsShape(Value logits) {
    checkArgument(
        logits.dataType().orElse(null) == DataType.FLOAT,
        "The logits '%s' must be FLOAT tensors for the loss, but are %s. Cast them in the model.",
        logits.name(),
        logits.dataType().map(Object::toString).orElse("of unknown type (run shape inference)"));
    Shape s =
        logits
            .shape()
            .orElseThrow(
                () ->
                    new IllegalArgumentException(
                        "The shape of logits '" + logits.name() + "' is unknown; give the output a"
                            + " shape or run shape inference."));
    checkArgument(s.rank() >= 1, "The logits '%s' are a scalar; the loss needs a batch axis", logits.name());
    return s;
  }
}
