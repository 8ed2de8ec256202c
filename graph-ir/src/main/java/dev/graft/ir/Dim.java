package dev.graft.ir;

/** One dimension of a {@link Shape}: a fixed size, a named symbolic size, or unknown. */
public sealed interface Dim permits Dim.Fixed, Dim.Symbolic, Dim.Unknown {

  static Dim of(long value) {
    return new Fixed(value);
  }

  static Dim of(String symbol) {
    return new Symbolic(symbol);
  }

  static Dim unknown() {
    return Unknown.INSTANCE;
  }

  default boolean isFixed() {
    return this instanceof Fixed;
  }

  /** The fixed size; throws for a symbolic or unknown dim. */
  default long value() {
    if (this instanceof Fixed f) {
      return f.size();
    }
    throw new IllegalStateException("Dimension " + this + " is not a fixed size");
  }

  record Fixed(long size) implements Dim {
    @Override
    public String toString() {
      return Long.toString(size);
    }
  }

  record Symbolic(String name) implements Dim {
    @Override
    public String toString() {
      return name;
    }
  }

  /** A dim whose size nothing says. Equal to every other unknown only as an object, not as a size. */
  final class Unknown implements Dim {
    static final Unknown INSTANCE = new Unknown();

    private Unknown() {}

    @Override
    public String toString() {
      return "?";
    }
  }
}
