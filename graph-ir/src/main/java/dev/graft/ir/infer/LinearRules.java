package dev.graft.ir.infer;

import dev.graft.ir.Dim;
import dev.graft.ir.Shape;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;

/** Contractions: MatMul (numpy matmul), Gemm, Einsum. */
final class LinearRules {
  private LinearRules() {}

  /** {@code MatMul}: batch dims broadcast, [.., M, K] x [.., K, N] -> [.., M, N]. */
  static void matMul(InferenceContext c) {
    Optional<Shape> a = c.shape(0);
    Optional<Shape> b = c.shape(1);
    if (a.isEmpty() || b.isEmpty()) {
      c.setOutput(0, c.elemOrNull(0), null);
      return;
    }
    List<Dim> da = new ArrayList<>(a.get().dims());
    List<Dim> db = new ArrayList<>(b.get().dims());
    if (da.isEmpty() || db.isEmpty()) throw c.error("MatMul needs inputs of rank 1 or more, got %s and %s", a.get(), b.get());
    // A 1-D operand is promoted to a matrix and its extra dim dropped from the result.
    boolean vecA = da.size() == 1;
    boolean vecB = db.size() == 1;
    if (vecA) da.add(0, Dims.ONE);
    if (vecB) db.add(Dims.ONE);
    Dim k1 = da.get(da.size() - 1);
    Dim k2 = db.get(db.size() - 2);
    if (!Dims.compatible(k1, k2)) throw c.error("inner dims differ: %s x %s", a.get(), b.get());
    Optional<Shape> batch =
        Dims.broadcast(
            List.of(Shape.of(da.subList(0, da.size() - 2)), Shape.of(db.subList(0, db.size() - 2))));
    if (batch.isEmpty()) throw c.error("batch dims of %s and %s do not broadcast", a.get(), b.get());
    List<Dim> out = new ArrayList<>(batch.get().dims());
    if (!vecA) out.add(da.get(da.size() - 2));
    if (!vecB) out.add(db.get(db.size() - 1));
    c.setOutput(0, c.elemOrNull(0), Shape.of(out));
  }

  /** {@code Gemm}: [M, K] x [K, N] (after transA / transB) -> [M, N]. */
  static void gemm(InferenceContext c) {
    Optional<Shape> a = c.shape(0);
    Optional<Shape> b = c.shape(1);
    if (a.isEmpty() || b.isEmpty()) {
      c.setOutput(0, c.elemOrNull(0), Dims.unknownDims(2));
      return;
    }
    if (a.get().rank() != 2 || b.get().rank() != 2) throw c.error("Gemm needs 2-D inputs, got %s and %s", a.get(), b.get());
    boolean ta = c.attrLong("transA", 0) != 0;
    boolean tb = c.attrLong("transB", 0) != 0;
    Dim m = a.get().dim(ta ? 1 : 0);
    Dim k1 = a.get().dim(ta ? 0 : 1);
    Dim k2 = b.get().dim(tb ? 1 : 0);
    Dim n = b.get().dim(tb ? 0 : 1);
    if (!Dims.compatible(k1, k2)) throw c.error("inner dims differ: %s x %s (transA=%s, transB=%s)", a.get(), b.get(), ta, tb);
    c.setOutput(0, c.elemOrNull(0), Shape.of(m, n));
  }

  /** {@code Einsum}: letters map to dims; the output lists its letters (or the lone ones, sorted). */
  static void einsum(InferenceContext c) {
    String eq = c.attrString("equation", "").replace(" ", "");
    String[] sides = eq.split("->", -1);
    String[] terms = sides[0].split(",", -1);
    if (terms.length != c.inputCount()) throw c.error("equation '%s' has %s operands for %s inputs", eq, terms.length, c.inputCount());
    Map<Character, Dim> sizes = new HashMap<>();
    Map<Character, Integer> counts = new TreeMap<>();
    Shape ellipsis = Shape.scalar();
    for (int i = 0; i < terms.length; i++) {
      Optional<Shape> s = c.shape(i);
      String t = terms[i];
      for (char ch : t.replace("...", "").toCharArray()) counts.merge(ch, 1, Integer::sum);
      if (s.isEmpty()) continue;
      int letters = t.replace("...", "").length();
      int ell = s.get().rank() - letters;
      int pos = 0;
      for (int k = 0; k < t.length(); k++) {
        if (t.startsWith("...", k)) {
          Optional<Shape> b = Dims.broadcast(List.of(ellipsis, Shape.of(s.get().dims().subList(pos, pos + ell))));
          if (b.isEmpty()) throw c.error("ellipsis dims do not broadcast in '%s'", eq);
          ellipsis = b.get();
          pos += ell;
          k += 2;
        } else {
          char ch = t.charAt(k);
          Dim d = s.get().dim(pos++);
          Dim prev = sizes.get(ch);
          if (prev == null || Dims.isFixed(prev, 1)) sizes.put(ch, d);
          else if (!Dims.isFixed(d, 1) && !Dims.compatible(prev, d)) throw c.error("label '%s' is %s and %s", ch, prev, d);
        }
      }
    }
    for (int i = 0; i < terms.length; i++) {
      if (c.shape(i).isEmpty()) {
        c.setOutput(0, c.elemOrNull(0), null);
        return;
      }
    }
    String outTerm;
    if (sides.length == 2) {
      outTerm = sides[1];
    } else {
      StringBuilder sb = new StringBuilder(sides[0].contains("...") ? "..." : "");
      counts.forEach((ch, n) -> {
        if (n == 1) sb.append(ch);
      });
      outTerm = sb.toString();
    }
    List<Dim> out = new ArrayList<>();
    for (int k = 0; k < outTerm.length(); k++) {
      if (outTerm.startsWith("...", k)) {
        out.addAll(ellipsis.dims());
        k += 2;
      } else {
        Dim d = sizes.get(outTerm.charAt(k));
        if (d == null) throw c.error("output label '%s' is on no input in '%s'", outTerm.charAt(k), eq);
        out.add(d);
      }
    }
    c.setOutput(0, c.elemOrNull(0), Shape.of(out));
  }
}
