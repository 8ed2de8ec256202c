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
public sealed interface Loss permits Loss.SoftmaxCrossEntropy, Loss.MeanSquaredError {

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
