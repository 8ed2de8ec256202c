package dev.graft.ir;

import java.util.Optional;

/**
 * The type of a value, mirroring ONNX's TypeProto: tensors (dense and sparse), sequences, maps,
 * optionals and opaque types. {@code denotation} is null when absent.
 */
public sealed interface Type
    permits Type.TensorType,
        Type.SparseTensorType,
        Type.SequenceType,
        Type.MapType,
        Type.OptionalType,
        Type.OpaqueType,
        Type.UnsetType {

  String denotation();

  static TensorType tensor(DataType elementType, Shape shape) {
    return new TensorType(elementType, Optional.ofNullable(shape), null);
  }

  static TensorType tensor(DataType elementType, long... sizes) {
    return new TensorType(elementType, Optional.of(Shape.of(sizes)), null);
  }

  /** A tensor of unknown rank. */
  static TensorType tensor(DataType elementType) {
    return new TensorType(elementType, Optional.empty(), null);
  }

  /**
   * A dense tensor. {@code elementType} is null when the proto left elem_type unset (legal in
   * value_info that only annotates a shape).
   */
  record TensorType(DataType elementType, Optional<Shape> shape, String denotation)
      implements Type {
    public TensorType withShape(Shape s) {
      return new TensorType(elementType, Optional.ofNullable(s), denotation);
    }

    @Override
    public String toString() {
      return (elementType == null ? "?" : elementType.name().toLowerCase())
          + shape.map(Shape::toString).orElse("[*]");
    }
  }

  record SparseTensorType(DataType elementType, Optional<Shape> shape, String denotation)
      implements Type {}

  record SequenceType(Type elementType, String denotation) implements Type {
    @Override
    public String toString() {
      return "seq(" + elementType + ")";
    }
  }

  record MapType(DataType keyType, Type valueType, String denotation) implements Type {}

  record OptionalType(Type elementType, String denotation) implements Type {
    @Override
    public String toString() {
      return "optional(" + elementType + ")";
    }
  }

  record OpaqueType(String domain, String name, String denotation) implements Type {}

  /** A TypeProto with no value set (only a denotation, or nothing). */
  record UnsetType(String denotation) implements Type {}
}
