package dev.graft.ir.infer;

import dev.graft.ir.Dim;
import dev.graft.ir.Shape;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Optional;

/**
 * Arithmetic on dims that may be symbolic or unknown. The rule throughout: a result is fixed or
 * symbolic only when it follows for every size the symbols could take; otherwise it is unknown.
 * Symbols are sizes, so they are never negative; two equal symbols are the same size.
 */
final class Dims {
  private Dims() {}

  static final Dim ONE = Dim.of(1);
  static final Dim ZERO = Dim.of(0);

  static boolean isUnknown(Dim d) {
    return d instanceof Dim.Unknown;
  }

  static boolean isFixed(Dim d, long v) {
    return d instanceof Dim.Fixed f && f.size() == v;
  }

  /** True when both dims are provably the same size (an unknown is never the same as anything). */
  static boolean sameSize(Dim a, Dim b) {
    if (isUnknown(a) || isUnknown(b)) return false;
    return a.equals(b);
  }

  /** True when the two dims might be equal (one unknown or symbolic, or both the same fixed). */
  static boolean compatible(Dim a, Dim b) {
    if (a instanceof Dim.Fixed fa && b instanceof Dim.Fixed fb) return fa.size() == fb.size();
    return true;
  }

  /**
   * Numpy broadcasting of two dims. Equal sizes match, 1 broadcasts, a fixed size other than 1
   * wins over a symbol (the symbol must be that size or 1). Empty when two fixed sizes clash.
   */
  static Optional<Dim> broadcast(Dim a, Dim b) {
    if (isFixed(a, 1)) return Optional.of(b);
    if (isFixed(b, 1)) return Optional.of(a);
    if (a instanceof Dim.Fixed fa && b instanceof Dim.Fixed fb) {
      return fa.size() == fb.size() ? Optional.of(a) : Optional.empty();
    }
    if (a instanceof Dim.Fixed) return Optional.of(a);
    if (b instanceof Dim.Fixed) return Optional.of(b);
    if (sameSize(a, b)) return Optional.of(a);
    return Optional.of(Dim.unknown());
  }

  /** Numpy broadcasting of shapes; empty when two fixed sizes clash. */
  static Optional<Shape> broadcast(List<Shape> shapes) {
    int rank = shapes.stream().mapToInt(Shape::rank).max().orElse(0);
    List<Dim> out = new ArrayList<>(Collections.nCopies(rank, ONE));
    for (Shape s : shapes) {
      int offset = rank - s.rank();
      for (int i = 0; i < s.rank(); i++) {
        Optional<Dim> d = broadcast(out.get(offset + i), s.dim(i));
        if (d.isEmpty()) return Optional.empty();
        out.set(offset + i, d.get());
      }
    }
    return Optional.of(Shape.of(out));
  }

  /**
   * The more specific of two descriptions of the same dim: fixed over symbolic over unknown;
   * between two symbols, the first. Empty when two fixed sizes differ.
   */
  static Optional<Dim> merge(Dim first, Dim second) {
    if (isUnknown(first)) return Optional.of(second);
    if (isUnknown(second)) return Optional.of(first);
    if (first instanceof Dim.Fixed f1) {
      return second instanceof Dim.Fixed f2 && f2.size() != f1.size()
          ? Optional.empty()
          : Optional.of(first);
    }
    if (second instanceof Dim.Fixed) return Optional.of(second);
    return Optional.of(first);
  }

  /** What two alternative dims (the branches of an If) have in common. */
  static Dim join(Dim a, Dim b) {
    return sameSize(a, b) ? a : Dim.unknown();
  }

  static Dim add(Dim a, Dim b) {
    if (a instanceof Dim.Fixed fa && b instanceof Dim.Fixed fb) return Dim.of(fa.size() + fb.size());
    if (isFixed(a, 0)) return b;
    if (isFixed(b, 0)) return a;
    return Dim.unknown();
  }

  static Dim sub(Dim a, Dim b) {
    if (a instanceof Dim.Fixed fa && b instanceof Dim.Fixed fb) return Dim.of(fa.size() - fb.size());
    if (isFixed(b, 0)) return a;
    if (sameSize(a, b)) return ZERO;
    return Dim.unknown();
  }

  static Dim mul(Dim a, Dim b) {
    if (a instanceof Dim.Fixed fa && b instanceof Dim.Fixed fb) return Dim.of(fa.size() * fb.size());
    if (isFixed(a, 1)) return b;
    if (isFixed(b, 1)) return a;
    if (isFixed(a, 0) || isFixed(b, 0)) return ZERO;
    return Dim.unknown();
  }

  /** Integer division truncating toward zero, as ONNX Runtime divides integer tensors. */
  static Dim div(Dim a, Dim b) {
    if (a instanceof Dim.Fixed fa && b instanceof Dim.Fixed fb) {
      return fb.size() == 0 ? Dim.unknown() : Dim.of(fa.size() / fb.size());
    }
    if (isFixed(b, 1)) return a;
    if (sameSize(a, b)) return ONE;
    return Dim.unknown();
  }

  /** The product of dims, when it is fixed or a single symbol; otherwise unknown. */
  static Dim product(List<Dim> dims) {
    Dim acc = ONE;
    for (Dim d : dims) {
      if (isFixed(d, 0)) return ZERO;
    }
    for (Dim d : dims) {
      acc = mul(acc, d);
      if (isUnknown(acc)) return acc;
    }
    return acc;
  }

  /**
   * {@code total / known} where both are products of dims, cancelling equal symbols: the size of
   * a Reshape's -1 entry. Fixed or a single symbol, else unknown.
   */
  static Dim quotient(List<Dim> total, List<Dim> known) {
    long num = 1;
    long den = 1;
    List<Dim> symbols = new ArrayList<>();
    for (Dim d : total) {
      if (d instanceof Dim.Fixed f) num *= f.size();
      else if (d instanceof Dim.Symbolic) symbols.add(d);
      else return Dim.unknown();
    }
    if (num == 0) return Dim.unknown();
    for (Dim d : known) {
      if (d instanceof Dim.Fixed f) den *= f.size();
      else if (d instanceof Dim.Symbolic) {
        if (!symbols.remove(d)) return Dim.unknown();
      } else return Dim.unknown();
    }
    if (den == 0 || num % den != 0) return Dim.unknown();
    long q = num / den;
    if (symbols.isEmpty()) return Dim.of(q);
    if (symbols.size() == 1 && q == 1) return symbols.get(0);
    return Dim.unknown();
  }

  /** A shape of {@code rank} unknown dims. */
  static Shape unknownDims(int rank) {
    return Shape.of(Collections.nCopies(rank, Dim.unknown()));
  }

  static long fixedOr(Dim d, long dflt) {
    return d instanceof Dim.Fixed f ? f.size() : dflt;
  }
}
