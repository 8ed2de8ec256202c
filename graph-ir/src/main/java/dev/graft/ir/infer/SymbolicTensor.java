package dev.graft.ir.infer;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.DataType;
import dev.graft.ir.Dim;
import dev.graft.ir.Shape;
import dev.graft.ir.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.function.BinaryOperator;

/**
 * What inference knows of the contents of a small integer (or bool) tensor: each element a fixed
 * number, a symbolic dim, or unknown. This is ONNX's data propagation: a {@code Shape} output
 * holds the input's dims, symbols included, so that {@code Shape -> Gather -> Unsqueeze -> Concat
 * -> Reshape} chains give Reshape a target like {@code [batch, sequence, 12, 32]}.
 *
 * @param shape the static shape of the tensor itself
 * @param values its elements in row-major order, one per element
 */
public record SymbolicTensor(Shape shape, ImmutableList<Dim> values) {

  /** Contents are tracked only for tensors this small: shape arithmetic, not data. */
  public static final int MAX_ELEMENTS = 64;

  public SymbolicTensor {
    checkArgument(shape.isStatic(), "contents need a static shape, got %s", shape);
    checkArgument(
        shape.numElements().orElseThrow() == values.size(),
        "%s values for shape %s",
        values.size(),
        shape);
  }

  public static SymbolicTensor of(Shape shape, List<Dim> values) {
    return new SymbolicTensor(shape, ImmutableList.copyOf(values));
  }

  public static SymbolicTensor vector(List<Dim> values) {
    return of(Shape.of(values.size()), values);
  }

  public static SymbolicTensor scalar(Dim value) {
    return of(Shape.scalar(), List.of(value));
  }

  public static SymbolicTensor ofLongs(Shape shape, long... values) {
    List<Dim> d = new ArrayList<>(values.length);
    for (long v : values) d.add(Dim.of(v));
    return of(shape, d);
  }

  /** True for the element types whose contents inference tracks. */
  public static boolean tracks(DataType t) {
    return t != null && (t.isInteger() || t == DataType.BOOL);
  }

  /** The contents of a small integer tensor; empty for other types or larger tensors. */
  public static Optional<SymbolicTensor> fromTensor(Tensor t) {
    if (!tracks(t.dataType()) || t.numElements() > MAX_ELEMENTS) return Optional.empty();
    if (t.dataType().bits() < 8 || t.dataType() == DataType.UINT64) return Optional.empty();
    return Optional.of(ofLongs(t.shape(), t.toLongArray()));
  }

  public int size() {
    return values.size();
  }

  public Dim get(int i) {
    return values.get(i);
  }

  /** The values as numbers when every element is fixed. */
  public Optional<long[]> longs() {
    long[] out = new long[values.size()];
    for (int i = 0; i < out.length; i++) {
      if (!(values.get(i) instanceof Dim.Fixed f)) return Optional.empty();
      out[i] = f.size();
    }
    return Optional.of(out);
  }

  /** The same elements under another static shape of the same size. */
  public SymbolicTensor reshape(Shape s) {
    return of(s, values);
  }

  /** Elementwise {@code op} under numpy broadcasting; empty when the shapes do not broadcast. */
  public static Optional<SymbolicTensor> zip(
      SymbolicTensor a, SymbolicTensor b, BinaryOperator<Dim> op) {
    Optional<Shape> out = Dims.broadcast(List.of(a.shape, b.shape));
    if (out.isEmpty() || !out.get().isStatic()) return Optional.empty();
    long[] o = out.get().staticSizes();
    long n = out.get().numElements().orElseThrow();
    if (n > MAX_ELEMENTS) return Optional.empty();
    List<Dim> vals = new ArrayList<>((int) n);
    for (int flat = 0; flat < n; flat++) {
      vals.add(op.apply(a.get(sourceIndex(flat, o, a.shape)), b.get(sourceIndex(flat, o, b.shape))));
    }
    return Optional.of(of(out.get(), vals));
  }

  /** The flat index in {@code src} that broadcasting reads for flat output index {@code flat}. */
  static int sourceIndex(int flat, long[] outSizes, Shape src) {
    long[] s = src.staticSizes();
    int offset = outSizes.length - s.length;
    int idx = 0;
    int stride = 1;
    int rem = flat;
    int[] coords = new int[outSizes.length];
    for (int i = outSizes.length - 1; i >= 0; i--) {
      coords[i] = (int) (rem % outSizes[i]);
      rem /= (int) outSizes[i];
    }
    for (int i = s.length - 1; i >= 0; i--) {
      int c = s[i] == 1 ? 0 : coords[i + offset];
      idx += c * stride;
      stride *= (int) s[i];
    }
    return idx;
  }

  @Override
  public String toString() {
    return "contents" + shape + values;
  }
}
