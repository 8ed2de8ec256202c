package dev.graft.trainer.task;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.infer.ShapeInference;
import dev.graft.ir.io.ModelIO;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.decompose.ContribDecomposition;
import dev.graft.rewrite.decompose.DropPastKeyValues;
import dev.graft.rewrite.discover.Module;
import dev.graft.rewrite.discover.ModuleDiscovery;
import dev.graft.trainer.data.ByteTokenizer;
import dev.graft.trainer.data.CausalLmData;
import dev.graft.trainer.data.CausalLmData.Block;
import dev.graft.trainer.data.DataFileException;
import dev.graft.trainer.data.Shuffle;
import dev.graft.trainer.train.EvalResult;
import dev.graft.trainer.train.Loss;
import dev.graft.trainer.train.Trainer;
import ai.onnxruntime.OrtException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;

/**
 * Causal language modelling on a decoder's own {@code logits [batch, sequence, vocab]}: the data
 * are byte-level token blocks ({@link CausalLmData}: plain text, or JSONL {@code text} or {@code
 * prompt}/{@code completion} with the loss on the completion only), the loss is next-token
 * cross-entropy over the positions with a target (the labels are the inputs shifted by one), and
 * the metric is perplexity, {@code exp(mean NLL per target byte)}, with bits per byte beside it.
 *
 * <pre>
 *   training copy = model  - past key/values (DropPastKeyValues)  - contrib ops (ContribDecomposition)
 *   logits [b, L, V] --SoftmaxCrossEntropyLoss(ignore_index -100)--> loss      labels = block[1..L]
 * </pre>
 *
 * The training graph runs on whole blocks and feeds no past key/values even when the model
 * declares them; the GenAI form's GroupQueryAttention, SkipSimplifiedLayerNormalization and
 * MatMulNBits are decomposed in that copy only. The saved model is the deployed form (the loop
 * writes the trained values back into it): contrib ops and KV cache intact. {@code --max-length}
 * is the block size; without {@code --test} the last {@code --test-fraction} of the blocks (the
 * end of the text) is held out.
 */
public final class CausalLmTask implements Task {
  public static final String NAME = "causal-lm";
  public static final String OUTPUT = "logits";

  private ImmutableList<Block> train;
  private ImmutableList<Block> test;
  private int batchSize;
  private ImmutableList<String> inputs;

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public String load(DataConfig c) {
    int block = c.maxLength();
    List<Block> all = new ArrayList<>();
    for (Path p : c.train()) all.addAll(CausalLmData.read(p, block));
    batchSize = c.batchSize();
    if (c.test().isEmpty()) {
      int held = (int) Math.round(all.size() * c.testFraction());
      if (held < 1 || held >= all.size()) {
        throw new DataFileException(c.train().get(0), 0, all.size() + " blocks of " + block
            + " bytes cannot be split into training and held-out blocks with --test-fraction " + c.testFraction()
            + ". Give more text, a smaller --max-length, or a --test file.");
      }
      train = ImmutableList.copyOf(all.subList(0, all.size() - held));
      test = ImmutableList.copyOf(all.subList(all.size() - held, all.size()));
    } else {
      train = ImmutableList.copyOf(all);
      List<Block> t = new ArrayList<>();
      for (Path p : c.test()) t.addAll(CausalLmData.read(p, block));
      test = ImmutableList.copyOf(t);
    }
    return String.format(Locale.ROOT, "data: %d train and %d test blocks of %d bytes (%,d and %,d target bytes)",
        train.size(), test.size(), block, targets(train), targets(test));
  }

  private static long targets(List<Block> blocks) {
    return blocks.stream().mapToLong(Block::targets).sum();
  }

  /**
   * No head: a decoder has its LM head. A model without a {@code logits} output of rank 3, or
   * with no decoder block discovery recognises, is refused in one line.
   */
  @Override
  public Optional<TaskHead> head(Model model) {
    requireDecoder(model);
    return Optional.empty();
  }

  /** Checks that {@code model} is a decoder language model this task can train. */
  public static void requireDecoder(Model model) {
    Optional<Value> logits = model.graph().outputs().stream().filter(o -> o.name().equals(OUTPUT)).findFirst();
    List<String> outputs = model.graph().outputs().stream().map(Value::name).toList();
    if (logits.isEmpty() || logits.get().shape().map(s -> s.rank() != 3).orElse(false)) {
      throw new IllegalArgumentException("causal-lm trains a decoder's 'logits' [batch, sequence, vocab] output; this"
          + " model's outputs are " + outputs + ". Give a decoder language model (graft inspect lists its blocks).");
    }
    boolean attention = false;
    boolean mlp = false;
    for (Module m : ModuleDiscovery.discover(model)) {
      attention |= m.name().matches("layer\\.\\d+\\.attention\\.query");
      mlp |= m.name().matches("layer\\.\\d+\\.mlp\\.down");
    }
    if (!attention || !mlp) {
      throw new IllegalArgumentException("causal-lm found no decoder block in this model (no attention with query,"
          + " key and value projections and no gated MLP, as in layer.N.attention.query and layer.N.mlp.down); it trains"
          + " LLaMA-style decoders, standard or ORT GenAI form. Check the model with graft inspect.");
    }
  }

  @Override
  public Objective objective(Model model) {
    Model copy = ModelIO.fromBytes(ModelIO.toBytes(model), null);
    new DropPastKeyValues().run(copy);
    PassResult r = new ContribDecomposition().run(copy);
    if (!r.notes().isEmpty()) {
      throw new IllegalArgumentException("causal-lm cannot train through " + String.join("; ", r.notes())
          + ". Export the decoder without that form, or train the standard export.");
    }
    ShapeInference.infer(copy);
    long vocab = copy.graph().valueOrThrow(OUTPUT).shape().filter(s -> s.rank() == 3 && s.dim(2).isFixed())
        .map(s -> s.dim(2).value()).orElse((long) ByteTokenizer.VOCAB);
    if (vocab < ByteTokenizer.VOCAB) {
      throw new IllegalArgumentException("causal-lm feeds byte tokens (0..255), but the model's vocabulary has " + vocab
          + " entries. Use a decoder with at least 256.");
    }
    List<String> in = new ArrayList<>();
    for (Value v : copy.graph().inputs()) {
      if (v.isInitializer()) continue;
      if (!List.of("input_ids", "attention_mask", "position_ids").contains(v.name())) {
        throw new IllegalArgumentException("causal-lm feeds input_ids, attention_mask and position_ids; the decoder also"
            + " reads '" + v.name() + "'. Export it without that input.");
      }
      in.add(v.name());
    }
    inputs = ImmutableList.copyOf(in);
    return Objective.of(copy, OUTPUT, Loss.crossEntropy().withIgnoreIndex(CausalLmData.IGNORE));
  }

  @Override
  public List<TaskBatch> trainBatches(long seed) {
    List<Block> order = Shuffle.shuffled(train, seed);
    List<TaskBatch> out = new ArrayList<>();
    for (int i = 0; i < order.size(); i += batchSize) {
      out.add(feed(order.subList(i, Math.min(order.size(), i + batchSize))));
    }
    return out;
  }

  /** The blocks' tokens, an all-ones mask, positions 0..L-1 (those the graph reads) and the labels. */
  public TaskBatch feed(List<Block> blocks) {
    if (inputs == null) throw new IllegalStateException("CausalLmTask: call objective(model) before asking for batches");
    int b = blocks.size();
    int len = blocks.get(0).inputIds().length;
    long[] ids = new long[b * len];
    long[] labels = new long[b * len];
    long[] ones = new long[b * len];
    long[] positions = new long[b * len];
    for (int i = 0; i < b; i++) {
      System.arraycopy(blocks.get(i).inputIds(), 0, ids, i * len, len);
      System.arraycopy(blocks.get(i).labels(), 0, labels, i * len, len);
      for (int t = 0; t < len; t++) positions[i * len + t] = t;
    }
    Arrays.fill(ones, 1);
    long[] dims = {b, len};
    Map<String, Tensor> f = new LinkedHashMap<>();
    for (String name : inputs) {
      long[] v = switch (name) {
        case "input_ids" -> ids;
        case "attention_mask" -> ones;
        default -> positions;
      };
      f.put(name, DenseTensor.ofLongs(name, dims, v));
    }
    f.put(Objective.DEFAULT_LABELS, DenseTensor.ofLongs(Objective.DEFAULT_LABELS, dims, labels));
    return TaskBatch.of(f, b);
  }

  @Override
  public int trainSize() {
    return train.size();
  }

  @Override
  public int testSize() {
    return test.size();
  }

  /** Mean NLL per target byte over the held-out blocks, its perplexity and bits per byte. */
  @Override
  public Evaluation evaluate(Trainer trainer) throws OrtException {
    double nll = 0;
    long n = 0;
    for (int i = 0; i < test.size(); i += batchSize) {
      List<Block> blocks = test.subList(i, Math.min(test.size(), i + batchSize));
      long t = targets(blocks);
      if (t == 0) continue;
      EvalResult r = trainer.evalStep(feed(blocks).feeds());
      nll += r.loss() * t; // the loss is the mean over this batch's targets
      n += t;
    }
    double mean = nll / Math.max(1, n);
    Map<String, Double> m = new LinkedHashMap<>();
    m.put("perplexity", Math.exp(mean));
    m.put("bits_per_byte", mean / Math.log(2));
    return Evaluation.of(mean, m);
  }

  @Override
  public Model finish(Model trained) {
    describe(trained);
    trained.putMetadata("graft.tokenizer", "bytes");
    trained.putMetadata("graft.vocab", Integer.toString(ByteTokenizer.VOCAB));
    return trained;
  }
}
