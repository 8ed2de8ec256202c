package dev.graft.ir;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import com.google.common.primitives.Floats;
import com.google.common.primitives.Longs;
import dev.graft.ir.tensor.Tensor;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * A node attribute: a name, a type and a value of that type.
 *
 * <p>Values by type: FLOAT {@code Float}; INT {@code Long}; STRING {@code byte[]} (ONNX strings
 * are bytes; {@link #asString()} decodes UTF-8); TENSOR {@link Tensor}; GRAPH {@link Graph};
 * FLOATS {@code float[]}; INTS {@code long[]}; STRINGS {@code List<byte[]>}; TENSORS {@code
 * List<Tensor>}; GRAPHS {@code List<Graph>}; TYPE_PROTO {@link Type}; TYPE_PROTOS {@code
 * List<Type>}; SPARSE_TENSOR {@code byte[]} and SPARSE_TENSORS {@code List<byte[]>}, serialized
 * protos kept opaque. A reference attribute inside a function has a {@code refAttrName} and no
 * value. {@code extras} keeps unmodelled proto fields for lossless saves.
 */
public record Attr(
    String name, AttrType type, Object value, String refAttrName, String docString, byte[] extras) {

  public Attr {
    checkArgument(name != null, "attribute name is null");
    if (extras == null) extras = new byte[0];
  }

  public static Attr of(String name, long v) {
    return new Attr(name, AttrType.INT, v, null, null, null);
  }

  public static Attr of(String name, float v) {
    return new Attr(name, AttrType.FLOAT, v, null, null, null);
  }

  public static Attr of(String name, String v) {
    return new Attr(name, AttrType.STRING, v.getBytes(StandardCharsets.UTF_8), null, null, null);
  }

  public static Attr of(String name, Tensor v) {
    return new Attr(name, AttrType.TENSOR, v, null, null, null);
  }

  public static Attr of(String name, Graph v) {
    return new Attr(name, AttrType.GRAPH, v, null, null, null);
  }

  public static Attr ints(String name, long... v) {
    return new Attr(name, AttrType.INTS, v.clone(), null, null, null);
  }

  public static Attr ints(String name, List<Long> v) {
    return new Attr(name, AttrType.INTS, Longs.toArray(v), null, null, null);
  }

  public static Attr floats(String name, float... v) {
    return new Attr(name, AttrType.FLOATS, v.clone(), null, null, null);
  }

  public static Attr strings(String name, List<String> v) {
    return new Attr(
        name,
        AttrType.STRINGS,
        v.stream().map(s -> s.getBytes(StandardCharsets.UTF_8)).toList(),
        null,
        null,
        null);
  }

  public boolean isReference() {
    return refAttrName != null;
  }

  public long asLong() {
    return (Long) expect(AttrType.INT);
  }

  public float asFloat() {
    return (Float) expect(AttrType.FLOAT);
  }

  public String asString() {
    return new String((byte[]) expect(AttrType.STRING), StandardCharsets.UTF_8);
  }

  public Tensor asTensor() {
    return (Tensor) expect(AttrType.TENSOR);
  }

  public Graph asGraph() {
    return (Graph) expect(AttrType.GRAPH);
  }

  public long[] asLongs() {
    return ((long[]) expect(AttrType.INTS)).clone();
  }

  public List<Long> asLongList() {
    return Longs.asList(asLongs());
  }

  public float[] asFloats() {
    return ((float[]) expect(AttrType.FLOATS)).clone();
  }

  public List<Float> asFloatList() {
    return Floats.asList(asFloats());
  }

  @SuppressWarnings("unchecked")
  public List<String> asStrings() {
    return ((List<byte[]>) expect(AttrType.STRINGS))
        .stream().map(b -> new String(b, StandardCharsets.UTF_8)).toList();
  }

  @SuppressWarnings("unchecked")
  public List<Graph> asGraphs() {
    return ImmutableList.copyOf((List<Graph>) expect(AttrType.GRAPHS));
  }

  @SuppressWarnings("unchecked")
  public List<Tensor> asTensors() {
    return ImmutableList.copyOf((List<Tensor>) expect(AttrType.TENSORS));
  }

  /** The subgraphs this attribute holds (one for GRAPH, many for GRAPHS, else none). */
  @SuppressWarnings("unchecked")
  public List<Graph> subgraphs() {
    if (refAttrName != null) return List.of();
    return switch (type) {
      case GRAPH -> List.of((Graph) value);
      case GRAPHS -> (List<Graph>) value;
      default -> List.of();
    };
  }

  private Object expect(AttrType t) {
    if (type != t || value == null) {
      throw new IllegalStateException(
          "Attribute '"
              + name
              + "' is "
              + (refAttrName != null ? "a reference to '" + refAttrName + "'" : type.toString())
              + ", not "
              + t);
    }
    return value;
  }

  @Override
  public String toString() {
    if (refAttrName != null) return name + "=@" + refAttrName;
    String v =
        switch (type) {
          case STRING -> "\"" + asString() + "\"";
          case INTS -> Longs.asList((long[]) value).toString();
          case FLOATS -> Floats.asList((float[]) value).toString();
          case STRINGS -> asStrings().toString();
          case GRAPH -> "<graph " + ((Graph) value).name() + ">";
          case TENSOR -> ((Tensor) value).dataType() + java.util.Arrays.toString(((Tensor) value).dims());
          default -> String.valueOf(value);
        };
    return name + "=" + v;
  }

  @Override
  public boolean equals(Object o) {
    return this == o;
  }

  @Override
  public int hashCode() {
    return System.identityHashCode(this);
  }
}
