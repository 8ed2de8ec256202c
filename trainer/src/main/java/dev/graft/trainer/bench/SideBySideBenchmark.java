package dev.graft.trainer.bench;

import dev.graft.ir.Model;
import dev.graft.ir.convert.WorkingModels;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.rewrite.recipe.Recipe;
import dev.graft.trainer.data.Batch;
import dev.graft.trainer.data.Batcher;
import dev.graft.trainer.data.EncodedExample;
import dev.graft.trainer.data.LabelMap;
import dev.graft.trainer.data.LengthBuckets;
import dev.graft.trainer.data.Shuffle;
import dev.graft.trainer.data.TextDatasets;
import dev.graft.trainer.data.TextExample;
import dev.graft.trainer.data.WordPieceTokenizer;
import dev.graft.trainer.train.AdamW;
import dev.graft.trainer.train.LrSchedule;
import dev.graft.trainer.train.Loss;
import dev.graft.trainer.train.StepResult;
import dev.graft.trainer.train.TrainStepGraph;
import dev.graft.trainer.train.Trainer;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Graft's half of {@code bench/pytorch-vs-graft.sh}: the same batches for Graft and the PyTorch
 * peer ({@code bench/peft_peer.py}), trained one after the other in separate processes.
 *
 * <pre>
 *   export: data file(s) -> tokenizer -> labels -> [shuffle per epoch] -> batches -> BATCHES file
 *     java -cp graft.jar dev.graft.trainer.bench.SideBySideBenchmark export --data a.json[,b.json]
 *       --tokenizer T.json --max-length 64 --batch 32 --epochs 1 [--limit N] [--buckets] --out BATCHES
 *   train:  BATCHES -> model upgraded, recipe passes -> TrainStepGraph -> Trainer, one step a batch
 *     java -cp graft.jar dev.graft.trainer.bench.SideBySideBenchmark train --model M.onnx
 *       --recipe R.yaml --batches BATCHES --threads 2
 * </pre>
 *
 * The train mode is the path {@code graft train} takes (WorkingModels.load, the recipe's passes, the
 * same TrainStepGraph and Trainer with AdamW, warm-up and decay, clipping at 1), without the
 * per-epoch evaluation, so that both sides do exactly the training work. It prints one line
 * {@code RESULT {...}} with the examples, the training loop's seconds, the whole process's
 * seconds and the first and last losses.
 *
 * <p>The batch file, little-endian: int32 magic 0x47524654 ("GRFT"), int32 batch count, int32
 * class count; per batch int32 rows, int32 length, then int64 ids, mask and token types
 * ({@code rows x length} each) and int64 labels ({@code rows}).
 */
public final class SideBySideBenchmark {
  static final int MAGIC = 0x47524654;

  private SideBySideBenchmark() {}

  public static void main(String[] args) throws Exception {
    if (args.length == 0 || !(args[0].equals("export") || args[0].equals("train"))) {
      throw new IllegalArgumentException("Usage: SideBySideBenchmark export|train --option value ...; see the class comment");
    }
    Map<String, String> opt = parse(Arrays.copyOfRange(args, 1, args.length));
    if (args[0].equals("export")) {
      export(opt);
    } else {
      train(opt);
    }
  }

  private static void export(Map<String, String> opt) throws IOException {
    List<TextExample> all = new ArrayList<>();
    for (String f : require(opt, "data").split(",")) {
      all.addAll(
          TextDatasets.read(
              Path.of(f),
              opt.getOrDefault("text-column", TextDatasets.DEFAULT_TEXT_COLUMN),
              opt.getOrDefault("label-column", TextDatasets.DEFAULT_LABEL_COLUMN)));
    }
    long seed = Long.parseLong(opt.getOrDefault("seed", "42"));
    all = Shuffle.shuffled(all, seed);
    int limit = Integer.parseInt(opt.getOrDefault("limit", "0"));
    if (limit > 0 && limit < all.size()) all = all.subList(0, limit);
    LabelMap labels = LabelMap.ofExamples(all);
    int maxLength = Integer.parseInt(opt.getOrDefault("max-length", "64"));
    int batchSize = Integer.parseInt(opt.getOrDefault("batch", "32"));
    int epochs = Integer.parseInt(opt.getOrDefault("epochs", "1"));
    List<EncodedExample> encoded;
    long padId;
    try (WordPieceTokenizer tok = WordPieceTokenizer.load(Path.of(require(opt, "tokenizer")), maxLength)) {
      encoded = tok.encodeAll(all, labels);
      padId = tok.padId();
    }
    Batcher batcher = new Batcher(batchSize, maxLength, padId);
    boolean buckets = Boolean.parseBoolean(opt.getOrDefault("buckets", "false"));
    List<Batch> batches = new ArrayList<>();
    for (int e = 1; e <= epochs; e++) {
      batches.addAll(
          buckets
              ? new LengthBuckets(batcher, LengthBuckets.DEFAULT_POOL_BATCHES).shuffled(encoded, seed + e)
              : batcher.shuffled(encoded, seed + e));
    }
    long tokens = 0;
    long padded = 0;
    for (Batch b : batches) {
      padded += (long) b.size() * b.sequenceLength();
      for (int r = 0; r < b.size(); r++) tokens += b.tokens(r);
    }
    Path out = Path.of(require(opt, "out"));
    try (DataOutputStream d = new DataOutputStream(new BufferedOutputStream(Files.newOutputStream(out)))) {
      writeInt(d, MAGIC);
      writeInt(d, batches.size());
      writeInt(d, labels.size());
      for (Batch b : batches) {
        writeInt(d, b.size());
        writeInt(d, b.sequenceLength());
        writeLongs(d, b.inputIds());
        writeLongs(d, b.attentionMask());
        writeLongs(d, b.tokenTypeIds());
        writeLongs(d, b.labels());
      }
    }
    System.out.printf(
        Locale.ROOT,
        "exported %d examples x %d epochs in %d batches (labels %s), mean length %.1f tokens, %.0f%% padding%s -> %s%n",
        all.size(), epochs, batches.size(), labels.labels(), tokens / (double) (all.size() * epochs),
        100.0 * (padded - tokens) / padded, buckets ? " (length buckets)" : "", out);
  }

  private static void train(Map<String, String> opt) throws Exception {
    List<Map<String, Tensor>> batches = readBatches(Path.of(require(opt, "batches")));
    int threads = Integer.parseInt(opt.getOrDefault("threads", "2"));
    double lr = Double.parseDouble(opt.getOrDefault("lr", "2e-3"));
    double started = uptime();
    Model model = WorkingModels.load(Path.of(require(opt, "model")));
    double loaded = uptime();
    Recipe.load(Path.of(require(opt, "recipe"))).manager().run(model);
    double rewritten = uptime();
    TrainStepGraph graphs =
        TrainStepGraph.builder(model)
            .logits("logits")
            .labels("labels")
            .loss(Loss.crossEntropy())
            .optimizer(new AdamW(0.9, 0.999, 1e-8, 0.01, AdamW.defaults().decayOn()))
            .clipGradNorm(1.0)
            .unpadWhereMasked() // as graft train does (--no-unpad there, -Dgraft.train.unpad=0 here)
            .build();
    model = null;
    long trainable = graphs.params().stream().mapToLong(TrainStepGraph.Param::numElements).sum();
    long steps = batches.size();
    LrSchedule schedule = LrSchedule.linear(lr, Math.round(0.1 * steps), steps, 0);
    long examples = 0;
    double firstLoss = Double.NaN;
    double lastLoss = Double.NaN;
    long loopStart;
    long loopEnd;
    try (Trainer trainer =
        Trainer.builder(graphs).schedule(schedule).intraOpThreads(threads).notes(n -> System.err.println("graft: " + n)).build()) {
      loopStart = System.nanoTime();
      long rssAtLoop = statusKb("VmRSS:");
      System.err.printf(Locale.ROOT, "graft: start-up %.2f s: JVM and batches %.2f, model %.2f, recipe %.2f, train-step graph"
          + " (differentiated) and its session %.2f%n", uptime(), started, loaded - started, rewritten - loaded, uptime() - rewritten);
      for (int i = 0; i < batches.size(); i++) {
        Map<String, Tensor> b = batches.get(i);
        StepResult r = trainer.trainStep(b);
        if (i == 0) firstLoss = r.loss();
        lastLoss = r.loss();
        examples += b.get("labels").dims()[0];
        if ((i + 1) % 10 == 0 || i + 1 == batches.size()) {
          double s = (System.nanoTime() - loopStart) / 1e9;
          System.err.printf(Locale.ROOT, "graft: step %d/%d loss %.4f %.1f ex/s%n", i + 1, batches.size(), r.loss(), examples / s);
        }
        if (i == 0) {
          System.err.printf(Locale.ROOT, "graft: first step %.2f s, resident set %d -> %d MiB%n",
              (System.nanoTime() - loopStart) / 1e9, rssAtLoop / 1024, statusKb("VmRSS:") / 1024);
        }
      }
      loopEnd = System.nanoTime();
    }
    double loopSeconds = (loopEnd - loopStart) / 1e9;
    double jobSeconds = ManagementFactory.getRuntimeMXBean().getUptime() / 1e3;
    System.out.printf(
        Locale.ROOT,
        "RESULT {\"side\": \"graft\", \"examples\": %d, \"loop_s\": %.2f, \"job_s\": %.2f, \"first_loss\": %.4f,"
            + " \"last_loss\": %.4f, \"peak_rss_mib\": %d, \"trainable\": %d}%n",
        examples, loopSeconds, jobSeconds, firstLoss, lastLoss, vmHwmKb() / 1024, trainable);
  }

  /** Seconds since the JVM started. */
  private static double uptime() {
    return ManagementFactory.getRuntimeMXBean().getUptime() / 1e3;
  }

  /** The resident-set high-water mark in kB, from /proc/self/status (Linux); -1 elsewhere. */
  static long vmHwmKb() {
    return statusKb("VmHWM:");
  }

  /** A kB field of /proc/self/status (Linux); -1 elsewhere. */
  private static long statusKb(String field) {
    try {
      for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
        if (line.startsWith(field)) return Long.parseLong(line.replaceAll("[^0-9]", ""));
      }
    } catch (IOException | NumberFormatException e) {
      return -1;
    }
    return -1;
  }

  /** The batch file as trainer feeds: input_ids, attention_mask, token_type_ids, labels. */
  static List<Map<String, Tensor>> readBatches(Path file) throws IOException {
    try (DataInputStream d = new DataInputStream(new BufferedInputStream(Files.newInputStream(file)))) {
      if (readInt(d) != MAGIC) throw new IllegalArgumentException(file + " is not a batch file written by the export mode");
      int n = readInt(d);
      readInt(d);
      List<Map<String, Tensor>> out = new ArrayList<>(n);
      for (int i = 0; i < n; i++) {
        int rows = readInt(d);
        int length = readInt(d);
        long[] dims = {rows, length};
        Map<String, Tensor> b = new LinkedHashMap<>();
        b.put("input_ids", DenseTensor.ofLongs("input_ids", dims, readLongs(d, rows * length)));
        b.put("attention_mask", DenseTensor.ofLongs("attention_mask", dims, readLongs(d, rows * length)));
        b.put("token_type_ids", DenseTensor.ofLongs("token_type_ids", dims, readLongs(d, rows * length)));
        b.put("labels", DenseTensor.ofLongs("labels", new long[] {rows}, readLongs(d, rows)));
        out.add(b);
      }
      return out;
    }
  }

  private static void writeInt(OutputStream o, int v) throws IOException {
    o.write(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(v).array());
  }

  private static void writeLongs(OutputStream o, long[] v) throws IOException {
    ByteBuffer b = ByteBuffer.allocate(v.length * 8).order(ByteOrder.LITTLE_ENDIAN);
    b.asLongBuffer().put(v);
    o.write(b.array());
  }

  private static int readInt(InputStream in) throws IOException {
    return ByteBuffer.wrap(in.readNBytes(4)).order(ByteOrder.LITTLE_ENDIAN).getInt();
  }

  private static long[] readLongs(InputStream in, int n) throws IOException {
    byte[] raw = in.readNBytes(n * 8);
    if (raw.length != n * 8) throw new IOException("The batch file ends early");
    long[] v = new long[n];
    ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN).asLongBuffer().get(v);
    return v;
  }

  private static String require(Map<String, String> opt, String name) {
    String v = opt.get(name);
    if (v == null) throw new IllegalArgumentException("SideBySideBenchmark needs --" + name);
    return v;
  }

  private static Map<String, String> parse(String[] args) {
    Map<String, String> m = new HashMap<>();
    for (int i = 0; i < args.length; i++) {
      if (!args[i].startsWith("--") || i + 1 >= args.length) {
        throw new IllegalArgumentException("Expected --option value pairs, got " + Arrays.toString(args));
      }
      m.put(args[i].substring(2), args[++i]);
    }
    return m;
  }
}
