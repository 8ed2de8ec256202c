package dev.graft.ir.convert;

import dev.graft.ir.Attr;
import dev.graft.ir.Constants;
import dev.graft.ir.Dim;
import dev.graft.ir.Node;
import dev.graft.ir.Shape;
import dev.graft.ir.Value;
import dev.graft.ir.tensor.Tensor;
import java.util.HashMap;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.OptionalLong;
import java.util.Set;

/**
 * Ranks of values, derived from stored shapes and, where a model carries none (exporters often
 * write no value_info), from the producers of the usual transformer and CNN ops. A rule that needs
 * a rank asks here; an empty answer means "unknown", and the rule then takes the rewrite that is
 * correct for every rank. Also the length of small 1-D shape vectors (the shape input of
 * Reshape), since that is what fixes the rank of a Reshape output.
 */
public final class Ranks {
  private static final Set<String> SAME_RANK =
      Set.of(
          "Identity", "Cast", "CastLike", "Erf", "Sqrt", "Relu", "Tanh", "Sigmoid", "Exp", "Log",
          "Neg", "Abs", "Softmax", "LogSoftmax", "Hardmax", "Dropout", "Slice", "Transpose",
          "Clip", "Reciprocal", "Floor", "Ceil", "Not", "LayerNormalization", "Gelu",
          "BatchNormalization", "InstanceNormalization", "Pad", "Tile", "CumSum", "LeakyRelu",
          "Elu", "Selu", "HardSigmoid", "HardSwish", "Softplus", "Softsign", "Sign", "Round",
          "IsNaN", "IsInf", "Sin", "Cos", "Conv", "ConvTranspose", "MaxPool", "AveragePool",
          "GlobalAveragePool", "GlobalMaxPool", "LRN", "Resize", "Mish", "Celu", "Trilu",
          "QuantizeLinear", "DequantizeLinear", "ScatterElements", "ScatterND", "GatherElements",
          "SpaceToDepth", "DepthToSpace", "ThresholdedRelu", "Shrink", "LpNormalization",
          "MeanVarianceNormalization");
  private static final Set<String> BROADCAST =
      Set.of(
          "Add", "Sub", "Mul", "Div", "Pow", "Equal", "Less", "Greater", "LessOrEqual",
          "GreaterOrEqual", "And", "Or", "Xor", "Where", "Max", "Min", "Mod", "PRelu", "Sum",
          "Mean", "BitShift");

  private final Map<Value, OptionalInt> ranks = new HashMap<>();

  /** The rank of {@code v}, if the stored shape or the producers fix it. */
  public OptionalInt rank(Value v) {
    if (v == null) return OptionalInt.empty();
    OptionalInt known = ranks.get(v);
    if (known != null) return known;
    ranks.put(v, OptionalInt.empty()); // guards against cycles through malformed graphs
    OptionalInt r = compute(v);
    ranks.put(v, r);
    return r;
  }

  private OptionalInt compute(Value v) {
    Optional<Shape> s = v.shape();
    if (s.isPresent()) return OptionalInt.of(s.get().rank());
    if (v.initializer().isPresent()) return OptionalInt.of(v.initializer().get().dims().length);
    Node p = v.producer().orElse(null);
    if (p == null || !p.domain().isEmpty()) return OptionalInt.empty();
    String op = p.opType();
    if (SAME_RANK.contains(op)) return v.producerIndex() == 0 ? rank(p.input(0)) : OptionalInt.empty();
    if (BROADCAST.contains(op)) {
      int max = 0;
      for (Value in : p.inputs()) {
        if (in == null) continue;
        OptionalInt r = rank(in);
        if (r.isEmpty()) return r;
        max = Math.max(max, r.getAsInt());
      }
      return OptionalInt.of(max);
    }
    switch (op) {
      case "MatMul": {
        OptionalInt a = rank(p.input(0));
        OptionalInt b = rank(p.input(1));
        if (a.isEmpty() || b.isEmpty()) return OptionalInt.empty();
        int ra = a.getAsInt();
        int rb = b.getAsInt();
        if (ra == 1 && rb == 1) return OptionalInt.of(0);
        if (ra == 1) return OptionalInt.of(rb - 1);
        if (rb == 1) return OptionalInt.of(ra - 1);
        return OptionalInt.of(Math.max(ra, rb));
      }
      case "Gemm":
      case "Flatten":
      case "NonZero":
        return OptionalInt.of(2);
      case "Shape":
      case "Range":
        return OptionalInt.of(1);
      case "Size":
        return OptionalInt.of(0);
      case "Gather":
        return sum(rank(p.input(0)), rank(p.input(1)), -1);
      case "Concat":
        for (Value in : p.inputs()) {
          OptionalInt r = rank(in);
          if (r.isPresent()) return r;
        }
        return OptionalInt.empty();
      case "Reshape":
      case "ConstantOfShape":
        return toInt(length(p.input(p.is("Reshape") ? 1 : 0)));
      case "Expand": {
        OptionalInt x = rank(p.input(0));
        OptionalLong n = length(p.input(1));
        if (x.isEmpty() || n.isEmpty()) return OptionalInt.empty();
        return OptionalInt.of((int) Math.max(x.getAsInt(), n.getAsLong()));
      }
      case "Unsqueeze":
        return sum(rank(p.input(0)), toInt(axesCount(p)), 0);
      case "Squeeze": {
        OptionalInt x = rank(p.input(0));
        OptionalLong n = axesCount(p);
        return x.isEmpty() || n.isEmpty()
            ? OptionalInt.empty()
            : OptionalInt.of(x.getAsInt() - (int) n.getAsLong());
      }
      case "Constant":
        return constantTensor(p).map(t -> OptionalInt.of(t.dims().length)).orElse(OptionalInt.empty());
      default:
        if (op.startsWith("Reduce") || op.equals("ArgMax") || op.equals("ArgMin")) {
          OptionalInt x = rank(p.input(0));
          if (x.isEmpty() || p.attrLong("keepdims", 1) != 0) return x;
          if (op.startsWith("Arg")) return OptionalInt.of(x.getAsInt() - 1);
          OptionalLong n = axesCount(p);
          if (n.isEmpty() && p.inputCount() < 2 && !p.hasAttr("axes")) return OptionalInt.of(0);
          return n.isEmpty() ? OptionalInt.empty() : OptionalInt.of(x.getAsInt() - (int) n.getAsLong());
        }
        return OptionalInt.empty();
    }
  }

  /** The static length of a 1-D value (such as a shape vector), if known. */
  OptionalLong length(Value v) {
    if (v == null) return OptionalLong.empty();
    Optional<Shape> s = v.shape();
    if (s.isPresent() && s.get().rank() == 1 && s.get().dim(0) instanceof Dim.Fixed f) {
      return OptionalLong.of(f.size());
    }
    if (v.initializer().isPresent()) {
      long[] d = v.initializer().get().dims();
      return d.length == 1 ? OptionalLong.of(d[0]) : OptionalLong.empty();
    }
    Node p = v.producer().orElse(null);
    if (p == null || !p.domain().isEmpty()) return OptionalLong.empty();
    switch (p.opType()) {
      case "Constant": {
        Optional<Tensor> t = constantTensor(p);
        return t.isPresent() && t.get().dims().length == 1
            ? OptionalLong.of(t.get().dims()[0])
            : OptionalLong.empty();
      }
      case "Unsqueeze": {
        OptionalInt r = rank(p.input(0));
        OptionalLong n = axesCount(p);
        return r.isPresent() && r.getAsInt() == 0 && n.isPresent() && n.getAsLong() == 1
            ? OptionalLong.of(1)
            : OptionalLong.empty();
      }
      case "Concat": {
        long total = 0;
        for (Value in : p.inputs()) {
          OptionalLong n = length(in);
          if (n.isEmpty()) return n;
          total += n.getAsLong();
        }
        return OptionalLong.of(total);
      }
      case "Shape": {
        OptionalInt r = rank(p.input(0));
        return r.isPresent() && !p.hasAttr("start") && !p.hasAttr("end")
            ? OptionalLong.of(r.getAsInt())
            : OptionalLong.empty();
      }
      case "Cast":
      case "Identity":
        return length(p.input(0));
      default:
        return OptionalLong.empty();
    }
  }

  /** How many axes a node's axes attribute or constant axes input lists. */
  private OptionalLong axesCount(Node p) {
    Optional<long[]> attr = p.attrLongs("axes");
    if (attr.isPresent()) return OptionalLong.of(attr.get().length);
    return length(p.input(1));
  }

  static Optional<Tensor> constantTensor(Node constant) {
    return Constants.constantValue(constant);
  }

  private static OptionalInt sum(OptionalInt a, OptionalInt b, int extra) {
    return a.isPresent() && b.isPresent()
        ? OptionalInt.of(a.getAsInt() + b.getAsInt() + extra)
        : OptionalInt.empty();
  }

  private static OptionalInt toInt(OptionalLong l) {
    return l.isPresent() ? OptionalInt.of((int) l.getAsLong()) : OptionalInt.empty();
  }
}
