import ai.onnxruntime.*;
import dev.graft.ir.*;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.trainer.train.Device;
import dev.graft.trainer.train.TrainSessionOptions;
import java.nio.*;
import java.nio.file.*;
import java.util.*;

/**
 * Times variants of small graphs, each its own ORT session with the trainer's options (2 threads),
 * run alternately, and prints each variant's median and minimum. The variants come from a text
 * file: lines before the first {@code == name} are common to all (inputs, initializers, outputs),
 * then each {@code == name} starts a variant. A line is {@code input NAME DIMS...} (random
 * float32), {@code init NAME DIMS...} (a random float32 initializer), {@code ints NAME VALUES...}
 * (an int64 vector), {@code output NAMES...}, or a node: {@code y1,y2 = [domain.]Op(a, b, #0.5)
 * attr=1 eps=1e-5f perm=0,2,1,3} ({@code #v} a float scalar, an empty output name an omitted one).
 *
 * <pre>
 *   java -cp tools/target/graft.jar bench/micro/OpMicroBenchmark.java bench/micro/layernorm.txt [rounds]
 * </pre>
 */
public class OpMicroBenchmark {
  public static void main(String[] a) throws Exception {
    List<String> lines = Files.readAllLines(Path.of(a[0]));
    int rounds = a.length > 1 ? Integer.parseInt(a[1]) : 20;
    Map<String, List<String>> variants = new LinkedHashMap<>();
    List<String> common = new ArrayList<>();
    String cur = null;
    for (String l : lines) {
      l = l.strip();
      if (l.isEmpty() || l.startsWith("//")) continue;
      if (l.startsWith("==")) { cur = l.substring(2).strip(); variants.put(cur, new ArrayList<>()); continue; }
      (cur == null ? common : variants.get(cur)).add(l);
    }
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    Map<String, OrtSession> sessions = new LinkedHashMap<>();
    Map<String, Map<String, OnnxTensor>> feeds = new LinkedHashMap<>();
    Random rnd = new Random(1);
    for (var e : variants.entrySet()) {
      List<String> all = new ArrayList<>(common); all.addAll(e.getValue());
      Map<String, OnnxTensor> f = new HashMap<>();
      Model m = build(all, env, f, rnd);
      var o = TrainSessionOptions.create(Device.cpu(), 2);
      sessions.put(e.getKey(), env.createSession(ModelIO.toBytes(m), o));
      feeds.put(e.getKey(), f);
    }
    Map<String, List<Double>> times = new LinkedHashMap<>();
    for (String k : List.copyOf(sessions.keySet())) { times.put(k, new ArrayList<>()); try { for (int i = 0; i < 3; i++) sessions.get(k).run(feeds.get(k)).close(); } catch (Exception ex) { System.out.println(k + ": " + ex.getMessage()); sessions.remove(k); times.remove(k);} }
    for (int r = 0; r < rounds; r++) {
      for (String k : sessions.keySet()) {
        long t0 = System.nanoTime();
        sessions.get(k).run(feeds.get(k)).close();
        times.get(k).add((System.nanoTime() - t0) / 1e6);
      }
    }
    for (String k : times.keySet()) {
      double[] s = times.get(k).stream().mapToDouble(d -> d).sorted().toArray();
      System.out.printf(Locale.ROOT, "%-40s median %7.2f ms  min %7.2f%n", k, s[s.length / 2], s[0]);
    }
  }

  static Model build(List<String> lines, OrtEnvironment env, Map<String, OnnxTensor> feeds, Random rnd) throws Exception {
    Graph g = new Graph("micro");
    Map<String, Value> vals = new HashMap<>();
    List<String> outs = new ArrayList<>();
    int k = 0;
    boolean ms = false;
    for (String l : lines) {
      String[] w = l.split("\\s+");
      if (w[0].equals("input")) {
        long[] dims = Arrays.stream(w).skip(2).mapToLong(Long::parseLong).toArray();
        vals.put(w[1], g.addInput(w[1], Type.tensor(DataType.FLOAT, Shape.of(dims))));
        int n = (int) Arrays.stream(dims).reduce(1, (x, y) -> x * y);
        FloatBuffer b = ByteBuffer.allocateDirect(n * 4).order(ByteOrder.nativeOrder()).asFloatBuffer();
        for (int i = 0; i < n; i++) b.put((float) rnd.nextGaussian());
        b.rewind();
        feeds.put(w[1], OnnxTensor.createTensor(env, b, dims));
      } else if (w[0].equals("init")) {
        long[] dims = Arrays.stream(w).skip(2).mapToLong(Long::parseLong).toArray();
        int n = (int) Arrays.stream(dims).reduce(1, (x, y) -> x * y);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) rnd.nextGaussian();
        vals.put(w[1], g.addInitializer(w[1], DenseTensor.ofFloats(w[1], dims, v)));
      } else if (w[0].equals("ints")) {
        long[] v = Arrays.stream(w).skip(2).mapToLong(Long::parseLong).toArray();
        vals.put(w[1], g.addInitializer(w[1], DenseTensor.vector(w[1], v)));
      } else if (w[0].equals("output")) {
        for (int i = 1; i < w.length; i++) outs.add(w[i]);
      } else {
        // o1,o2 = dom.Op(a, b, #0.5) attr=1 attrf=0.5f
        int eq = l.indexOf('=');
        String[] on = l.substring(0, eq).strip().split(",", -1);
        String rest = l.substring(eq + 1).strip();
        int p = rest.indexOf('('), q = rest.indexOf(')');
        String op = rest.substring(0, p).strip();
        String dom = "";
        int dot = op.lastIndexOf('.');
        if (dot > 0) { dom = op.substring(0, dot); op = op.substring(dot + 1); ms = true; }
        List<Value> ins = new ArrayList<>();
        for (String s : rest.substring(p + 1, q).split(",")) {
          s = s.strip();
          if (s.isEmpty()) continue;
          if (s.equals("_")) { ins.add(null); continue; }
          if (s.startsWith("#")) {
            String nm = "c" + (k++);
            vals.put(nm, g.addInitializer(nm, DenseTensor.scalar(nm, Float.parseFloat(s.substring(1)))));
            s = nm;
          }
          Value v = vals.get(s);
          if (v == null) throw new IllegalArgumentException("unknown " + s + " in " + l);
          ins.add(v);
        }
        List<Attr> attrs = new ArrayList<>();
        for (String at : rest.substring(q + 1).strip().split("\\s+")) {
          if (at.isEmpty()) continue;
          String[] kv = at.split("=");
          if (kv[1].endsWith("f")) attrs.add(Attr.of(kv[0], Float.parseFloat(kv[1].substring(0, kv[1].length() - 1))));
          else if (kv[1].contains(",")) attrs.add(Attr.ints(kv[0], Arrays.stream(kv[1].split(",")).mapToLong(Long::parseLong).toArray()));
          else attrs.add(Attr.of(kv[0], Long.parseLong(kv[1])));
        }
        List<String> names = new ArrayList<>();
        for (String s : on) names.add(s.strip());
        Node n = g.addNode(new Node(dom, op, ins, names, attrs, "n" + (k++) + "_" + on[0].strip()));
        for (Value o : n.outputs()) if (o != null) vals.put(o.name(), o);
      }
    }
    for (String o : outs) { Value v = vals.get(o); v.setType(Type.tensor(DataType.FLOAT)); g.addOutput(v); }
    Model m = new Model(g);
    m.setIrVersion(9L);
    m.setOpset("", 17);
    if (ms) m.setOpset("com.microsoft", 1);
    return m;
  }
}
