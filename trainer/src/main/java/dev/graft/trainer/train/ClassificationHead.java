package dev.graft.trainer.train;

import static com.google.common.base.Preconditions.checkArgument;

import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Shape;
import dev.graft.ir.Value;
import dev.graft.ir.build.GraphBuilder;
import dev.graft.ir.tensor.DenseTensor;
import java.util.List;
import java.util.Random;

/**
 * Puts a sequence-classification head on an encoder, as sentence-transformers pool:
 *
 * <pre>
 *   m      = Unsqueeze(Cast(attention_mask, float), 2)                       [batch, seq, 1]
 *   pooled = ReduceSum(hidden * m, 1) / Max(ReduceSum(m, 1), 1e-9)           [batch, hidden]
 *   logits = MatMul(pooled, head.weight) + head.bias                          [batch, classes]
 * </pre>
 *
 * {@code head.weight} is drawn from N(0, 1/hidden) with the given seed, {@code head.bias} is zero.
 * The encoder's outputs are replaced by {@code logits}. The encoder must be at opset 13 or newer.
 */
public final class ClassificationHead {
  public static final String WEIGHT = "head.weight";
  public static final String BIAS = "head.bias";
  public static final String LOGITS = "logits";

  private ClassificationHead() {}

  /** Adds the head to {@code encoder} in place; returns it. */
  public static Model meanPool(Model encoder, String hiddenOutput, String maskInput, int classes, long seed) {
    checkArgument(
        encoder.defaultOpset().orElse(0) >= 13,
        "The head writes ReduceSum with axes as an input (opset 13+); the encoder is at opset %s."
            + " Upgrade it first (OpsetUpgrade.upgrade).",
        encoder.defaultOpset().orElse(0));
    Graph g = encoder.graph();
    Value hidden =
        g.outputs().stream()
            .filter(o -> o.name().equals(hiddenOutput))
            .findFirst()
            .orElseThrow(
                () ->
                    new IllegalArgumentException(
                        "The encoder has no output '" + hiddenOutput + "'; its outputs are "
                            + g.outputs().stream().map(Value::name).toList()));
    Value mask = g.value(maskInput).filter(Value::isGraphInput).orElseThrow(
        () -> new IllegalArgumentException("The encoder has no input '" + maskInput + "'"));
    long width =
        hidden.shape()
            .filter(s -> s.rank() == 3 && s.dim(2).isFixed())
            .map(s -> s.dim(2).value())
            .orElseThrow(
                () ->
                    new IllegalArgumentException(
                        "Output '" + hiddenOutput + "' must be [batch, sequence, hidden] with a fixed"
                            + " hidden size to pool; it is " + hidden.shape().map(Shape::toString).orElse("unshaped")));
    checkArgument(classes >= 1, "a head needs at least one class, got %s", classes);
    Random rnd = new Random(seed);
    float[] w = new float[(int) (width * classes)];
    for (int i = 0; i < w.length; i++) w[i] = (float) (rnd.nextGaussian() / Math.sqrt(width));

    GraphBuilder b = GraphBuilder.on(g).prefix("/head");
    Value weight = b.initializer(WEIGHT, DenseTensor.ofFloats(WEIGHT, new long[] {width, classes}, w));
    Value bias = b.initializer(BIAS, DenseTensor.ofFloats(BIAS, new long[] {classes}, new float[classes]));
    Value m =
        b.op(
            "Unsqueeze",
            b.op("Cast", List.of(mask), Attr.of("to", (long) DataType.FLOAT.code())),
            b.int64s(2));
    Value sum = b.op("ReduceSum", List.of(b.op("Mul", hidden, m), b.int64s(1)), Attr.of("keepdims", 0L));
    Value count =
        b.op("Max", b.op("ReduceSum", List.of(m, b.int64s(1)), Attr.of("keepdims", 0L)), b.scalar(1e-9f));
    Value logits = b.op("Add", b.op("MatMul", b.op("Div", sum, count), weight), bias);
    for (Value o : List.copyOf(g.outputs())) g.removeOutput(o);
    b.output(LOGITS, logits);
    b.typed(logits, DataType.FLOAT, "batch", (long) classes);
    return encoder;
  }
}
