package dev.graft.tools.bench;

import dev.graft.ir.Attr;
import dev.graft.ir.DataType;
import dev.graft.ir.Dim;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Shape;
import dev.graft.ir.Type;
import dev.graft.ir.Value;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.peft.LoraPass;
import java.util.List;
import java.util.Locale;

/**
 * The editing benchmark: LoRA into every linear of a graph of 10,000 and of 40,000 nodes (a
 * stack of {@code x + Relu(x·W1)·W2} blocks, four nodes and two linears each, 16-wide so the
 * weights stay small). Prints, per size, the nodes before and after, the time of the LoRA pass
 * (module discovery, targeting and every insertion) and the time per inserted module; an
 * editing core that is linear in the node count gives the same time per module at both sizes.
 *
 * <pre>
 *   java -cp tools/target/graft.jar dev.graft.tools.bench.LoraEditBenchmark [NODES...]
 * </pre>
 */
public final class LoraEditBenchmark {
  private LoraEditBenchmark() {}

  public static void main(String[] args) {
    int[] sizes = args.length == 0 ? new int[] {10_000, 40_000} : java.util.Arrays.stream(args).mapToInt(Integer::parseInt).toArray();
    run(2_000); // warm-up: the JIT compiles the pass before anything is timed
    System.out.printf(Locale.ROOT, "%8s %8s %8s %10s %14s%n", "nodes", "after", "modules", "pass ms", "us / module");
    for (int n : sizes) run(n).print();
  }

  record Figure(int nodes, int after, int modules, double millis) {
    void print() {
      System.out.printf(Locale.ROOT, "%8d %8d %8d %10.1f %14.1f%n", nodes, after, modules, millis, millis * 1000 / modules);
    }
  }

  static Figure run(int nodes) {
    Model m = stack(nodes / 4, 16);
    int before = m.graph().nodeCount();
    long t0 = System.nanoTime();
    PassResult r = new LoraPass(Targets.all(), LoraPass.Config.defaults()).run(m);
    double ms = (System.nanoTime() - t0) / 1e6;
    int modules = r.changes().size();
    return new Figure(before, m.graph().nodeCount(), modules, ms);
  }

  /** {@code blocks} residual MLP blocks of width {@code w}. */
  static Model stack(int blocks, int w) {
    Graph g = new Graph("stack");
    Value x = g.addInput("x", Type.tensor(DataType.FLOAT, Shape.of(Dim.of("batch"), Dim.of(w))));
    float[] weights = new float[w * w];
    for (int i = 0; i < weights.length; i++) weights[i] = (float) Math.sin(i) * 0.1f;
    for (int b = 0; b < blocks; b++) {
      String p = "/blocks." + b;
      Value w1 = g.addInitializer("blocks." + b + ".fc1.weight", DenseTensor.ofFloats("w", new long[] {w, w}, weights));
      Value w2 = g.addInitializer("blocks." + b + ".fc2.weight", DenseTensor.ofFloats("w", new long[] {w, w}, weights));
      Value h = node(g, p + "/fc1/MatMul", "MatMul", x, w1);
      Value a = node(g, p + "/act/Relu", "Relu", h);
      Value o = node(g, p + "/fc2/MatMul", "MatMul", a, w2);
      x = node(g, p + "/Add", "Add", x, o);
    }
    g.addOutput(x);
    Model m = new Model(g);
    m.setIrVersion(8L);
    m.setOpset("", 17);
    return m;
  }

  private static Value node(Graph g, String name, String op, Value... in) {
    return g.addNode(new Node("", op, List.of(in), List.of(name + "_out"), List.<Attr>of(), name)).output();
  }
}
