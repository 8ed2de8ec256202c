package dev.graft.ir;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.stream.Collectors;

/**
 * A tensor shape of known rank: fixed, symbolic and unknown dims. An unknown rank is an empty
 * {@code Optional<Shape>} in {@link Type.TensorType}, never a Shape.
 *
 * <p>{@code denotations} keeps the rarely used per-dim denotation strings so that load and save
 * stay lossless; it is empty or has one (nullable) entry per dim.
 */
public final class Shape {
  private final ImmutableList<Dim> dims;
  private final List<String> denotations;

  private Shape(List<Dim> dims, List<String> denotations) {
    this.dims = ImmutableList.copyOf(dims);
    checkArgument(
        denotations.isEmpty() || denotations.size() == dims.size(),
        "denotations must be empty or one per dim");
    this.denotations = List.copyOf(denotations.stream().map(d -> d == null ? "" : d).toList());
  }

  public static Shape of(List<Dim> dims) {
    return new Shape(dims, List.of());
  }

  public static Shape of(Dim... dims) {
    return new Shape(Arrays.asList(dims), List.of());
  }

  public static Shape of(long... sizes) {
    return new Shape(Arrays.stream(sizes).mapToObj(Dim::of).toList(), List.of());
  }

  public static Shape scalar() {
    return new Shape(List.of(), List.of());
  }

  /** A shape carrying denotations; each entry "" or null means none for that dim. */
  public static Shape withDenotations(List<Dim> dims, List<String> denotations) {
    return new Shape(dims, denotations);
  }

  public ImmutableList<Dim> dims() {
    return dims;
  }

  public Dim dim(int axis) {
    return dims.get(axis < 0 ? axis + dims.size() : axis);
  }

  public int rank() {
    return dims.size();
  }

  /** "" where a dim has no denotation. Empty when the shape has none at all. */
  public List<String> denotations() {
    return denotations;
  }

  public boolean isStatic() {
    return dims.stream().allMatch(Dim::isFixed);
  }

  /** The sizes, if every dim is fixed. */
  public Optional<long[]> sizes() {
    if (!isStatic()) {
      return Optional.empty();
    }
    return Optional.of(dims.stream().mapToLong(Dim::value).toArray());
  }

  /** The sizes; throws with the shape in the message when a dim is not fixed. */
  public long[] staticSizes() {
    return sizes()
        .orElseThrow(() -> new IllegalStateException("Shape " + this + " is not static"));
  }

  /** The element count if static. */
  public Optional<Long> numElements() {
    return sizes().map(s -> Arrays.stream(s).reduce(1L, Math::multiplyExact));
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof Shape s && s.dims.equals(dims) && s.denotations.equals(denotations);
  }

  @Override
  public int hashCode() {
    return Objects.hash(dims, denotations);
  }

  @Override
  public String toString() {
    return dims.stream().map(Dim::toString).collect(Collectors.joining(",", "[", "]"));
  }
}
