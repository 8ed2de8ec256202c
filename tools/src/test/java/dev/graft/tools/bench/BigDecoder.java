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
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.io.SaveOptions;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.ExternalTensor;
import dev.graft.ir.tensor.Tensor;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * A decoder-like stack of any size with random weights in external data, written tensor by
 * tensor (a 4 MiB buffer, never the model): the stand-in for a large pretrained decoder in the
 * big-model proof. Each layer is pre-norm causal multi-head attention and a pre-norm MLP, as GPT-2
 * exports them:
 *
 * <pre>
 *   h = LayerNorm(x);  q,k,v = h·Wq, h·Wk, h·Wv  (heads: Reshape, Transpose)
 *   x = x + (Softmax(q·kᵀ·s + causal)·v)·Wo
 *   x = x + (Sigmoid(h'·Wup) ⊙ h'·Wup)·Wdown,  h' = LayerNorm(x)
 *   logits = LayerNorm(x)·Wout     ([batch, seq, outputs], a regression head)
 * </pre>
 *
 * Node names follow the exporter's {@code /model/layers.N/...} paths. Weights are N(0, 0.02²)
 * (uniform of that spread), so the forward pass stays finite at any depth.
 */
public final class BigDecoder {
  /** Sizes; {@code seq} is fixed (the causal mask is a constant). */
  public record Config(int layers, int width, int ffn, int heads, int seq, int outputs) {
    public long bytesPerLayer() {
      return 4L * (4L * width * width + 2L * width * ffn);
    }

    /** As many layers of this shape as make {@code bytes}, at least one. */
    public static Config ofBytes(long bytes, int width, int ffn, int heads) {
      Config one = new Config(1, width, ffn, heads, 16, 16);
      int layers = (int) Math.max(1, (bytes + one.bytesPerLayer() - 1) / one.bytesPerLayer());
      return new Config(layers, width, ffn, heads, 16, 16);
    }
  }

  private final Config c;
  private final FileChannel data;
  private final Path dir;
  private final String location;
  private final SplittableRandom random = new SplittableRandom(42);
  private final ByteBuffer buf = ByteBuffer.allocateDirect(4 << 20).order(ByteOrder.LITTLE_ENDIAN);
  private long end;
  private Graph g;
  private int counter;

  private BigDecoder(Config c, FileChannel data, Path dir, String location) {
    this.c = c;
    this.data = data;
    this.dir = dir;
    this.location = location;
  }

  /**
   * Writes {@code model} and its data file {@code model.getFileName() + ".data"}; returns the
   * data file. The weights go first to a scratch file, then the save copies them file to file.
   */
  public static Path write(Config c, Path model) throws IOException {
    Path dir = model.toAbsolutePath().getParent();
    Path scratch = dir.resolve(model.getFileName() + ".weights.tmp");
    try (FileChannel ch =
        FileChannel.open(scratch, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE)) {
      BigDecoder b = new BigDecoder(c, ch, dir, scratch.getFileName().toString());
      Model m = b.build();
      ModelIO.save(m, model, SaveOptions.keep());
    } finally {
      Files.deleteIfExists(scratch);
    }
    return dir.resolve(model.getFileName() + ".data");
  }

  private Model build() throws IOException {
    g = new Graph("big_decoder");
    Value x = g.addInput("hidden_states", Type.tensor(DataType.FLOAT, Shape.of(Dim.of("batch"), Dim.of(c.seq()), Dim.of(c.width()))));
    float[] mask = new float[c.seq() * c.seq()];
    for (int i = 0; i < c.seq(); i++) for (int j = i + 1; j < c.seq(); j++) mask[i * c.seq() + j] = -1e4f;
    Value causal = g.addInitializer("causal_mask", DenseTensor.ofFloats("causal_mask", new long[] {c.seq(), c.seq()}, mask));
    int dh = c.width() / c.heads();
    Value split = ints("heads_shape", 0, 0, c.heads(), dh);
    Value merge = ints("merge_shape", 0, 0, c.width());
    Value scale = g.addInitializer("attn_scale", DenseTensor.ofFloats("attn_scale", new long[] {}, (float) (1 / Math.sqrt(dh))));
    for (int l = 0; l < c.layers(); l++) {
      String p = "/model/layers." + l;
      String w = "model.layers." + l;
      Value h = norm(p + "/input_layernorm", w + ".input_layernorm", x);
      Value q = linear(p + "/self_attn/q_proj/MatMul", w + ".self_attn.q_proj.weight", h, c.width(), c.width());
      Value k = linear(p + "/self_attn/k_proj/MatMul", w + ".self_attn.k_proj.weight", h, c.width(), c.width());
      Value v = linear(p + "/self_attn/v_proj/MatMul", w + ".self_attn.v_proj.weight", h, c.width(), c.width());
      Value qh = op(p + "/self_attn/Transpose", "Transpose", List.of(op(p + "/self_attn/Reshape", "Reshape", List.of(q, split))), Attr.ints("perm", 0, 2, 1, 3));
      Value kh = op(p + "/self_attn/Transpose_1", "Transpose", List.of(op(p + "/self_attn/Reshape_1", "Reshape", List.of(k, split))), Attr.ints("perm", 0, 2, 3, 1));
      Value vh = op(p + "/self_attn/Transpose_2", "Transpose", List.of(op(p + "/self_attn/Reshape_2", "Reshape", List.of(v, split))), Attr.ints("perm", 0, 2, 1, 3));
      Value scores = op(p + "/self_attn/MatMul", "MatMul", List.of(qh, kh));
      Value masked = op(p + "/self_attn/Add", "Add", List.of(op(p + "/self_attn/Mul", "Mul", List.of(scores, scale)), causal));
      Value probs = op(p + "/self_attn/Softmax", "Softmax", List.of(masked), Attr.of("axis", -1L));
      Value ctx = op(p + "/self_attn/MatMul_1", "MatMul", List.of(probs, vh));
      Value ctxm = op(p + "/self_attn/Reshape_3", "Reshape", List.of(op(p + "/self_attn/Transpose_3", "Transpose", List.of(ctx), Attr.ints("perm", 0, 2, 1, 3)), merge));
      Value o = linear(p + "/self_attn/o_proj/MatMul", w + ".self_attn.o_proj.weight", ctxm, c.width(), c.width());
      x = op(p + "/Add", "Add", List.of(x, o));
      Value h2 = norm(p + "/post_attention_layernorm", w + ".post_attention_layernorm", x);
      Value up = linear(p + "/mlp/up_proj/MatMul", w + ".mlp.up_proj.weight", h2, c.width(), c.ffn());
      Value act = op(p + "/mlp/act/Mul", "Mul", List.of(up, op(p + "/mlp/act/Sigmoid", "Sigmoid", List.of(up))));
      Value down = linear(p + "/mlp/down_proj/MatMul", w + ".mlp.down_proj.weight", act, c.ffn(), c.width());
      x = op(p + "/Add_1", "Add", List.of(x, down));
    }
    Value hf = norm("/model/norm", "model.norm", x);
    Value logits = linear("/lm_head/MatMul", "lm_head.weight", hf, c.width(), c.outputs());
    g.rename(logits, "logits");
    g.addOutput(logits);
    logits.setType(Type.tensor(DataType.FLOAT, Shape.of(Dim.of("batch"), Dim.of(c.seq()), Dim.of(c.outputs()))));
    Model m = new Model(g);
    m.setIrVersion(8L);
    m.setOpset("", 17);
    m.setProducerName("graft-big-decoder");
    return m;
  }

  private Value ints(String name, long... v) {
    return g.addInitializer(name, DenseTensor.ofLongs(name, new long[] {v.length}, v));
  }

  private Value op(String name, String type, List<Value> inputs, Attr... attrs) {
    Node n = g.addNode(new Node("", type, inputs, List.of(name + "_output_" + (counter++)), List.of(attrs), name));
    return n.output();
  }

  private Value norm(String nodeName, String weightPrefix, Value x) {
    float[] ones = new float[c.width()];
    java.util.Arrays.fill(ones, 1f);
    Value gamma = g.addInitializer(weightPrefix + ".weight", DenseTensor.ofFloats(weightPrefix + ".weight", new long[] {c.width()}, ones));
    Value beta = g.addInitializer(weightPrefix + ".bias", DenseTensor.ofFloats(weightPrefix + ".bias", new long[] {c.width()}, new float[c.width()]));
    return op(nodeName + "/LayerNormalization", "LayerNormalization", List.of(x, gamma, beta), Attr.of("axis", -1L), Attr.of("epsilon", 1e-5f));
  }

  private Value linear(String nodeName, String weightName, Value x, int in, int out) throws IOException {
    Value w = g.addInitializer(weightName, randomWeight(weightName, in, out));
    return op(nodeName, "MatMul", List.of(x, w));
  }

  /** Writes in·out uniform(-0.035, 0.035) floats (std 0.02) at a page boundary; returns the tensor. */
  private Tensor randomWeight(String name, int in, int out) throws IOException {
    long offset = (end + 4095) / 4096 * 4096;
    long count = (long) in * out;
    data.position(offset);
    long left = count;
    while (left > 0) {
      buf.clear();
      int n = (int) Math.min(left, buf.capacity() / 4);
      for (int i = 0; i < n; i++) buf.putFloat((float) ((random.nextDouble() - 0.5) * 0.0693));
      buf.flip();
      while (buf.hasRemaining()) data.write(buf);
      left -= n;
    }
    long length = count * 4;
    end = offset + length;
    return new ExternalTensor(
        name, DataType.FLOAT, new long[] {in, out}, dir, location, offset, length,
        List.of(Map.entry("location", location), Map.entry("offset", Long.toString(offset)), Map.entry("length", Long.toString(length))),
        null, null);
  }
}
