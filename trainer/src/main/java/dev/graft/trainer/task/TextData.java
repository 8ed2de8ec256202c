package dev.graft.trainer.task;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import dev.graft.trainer.data.Batch;
import dev.graft.trainer.data.EncodedExample;
import dev.graft.trainer.data.Split;
import dev.graft.trainer.data.TextDatasets;
import dev.graft.trainer.data.TextExample;
import dev.graft.trainer.data.WordPieceTokenizer;
import dev.graft.trainer.eval.Evaluator;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/**
 * What the text tasks share: reading the train and held-out files (or splitting the held-out part
 * off), tokenising, and laying a {@link Batch} out as the model's token inputs.
 */
public final class TextData {
  private TextData() {}

  /** The examples a text task trains and scores on; {@code splitMade} when the test part was split off. */
  public record Parts(ImmutableList<TextExample> train, ImmutableList<TextExample> test, boolean splitMade) {}

  /**
   * Reads {@code c}'s files; with no test files, holds out {@code testFraction} of the training
   * data ({@code strata} non-null: per stratum, keeping its proportions) and writes it to
   * {@code out/test-split.jsonl} so that {@code graft eval} can score the same examples.
   */
  public static Parts read(DataConfig c, Function<TextExample, ?> strata) {
    List<TextExample> train = new ArrayList<>();
    for (Path p : c.train()) train.addAll(TextDatasets.read(p, c.textColumn(), c.labelColumn()));
    List<TextExample> test = new ArrayList<>();
    for (Path p : c.test()) test.addAll(TextDatasets.read(p, c.textColumn(), c.labelColumn()));
    if (!test.isEmpty()) return new Parts(ImmutableList.copyOf(train), ImmutableList.copyOf(test), false);
    Split<TextExample> split =
        strata == null
            ? Split.random(train, c.testFraction(), c.seed())
            : Split.stratified(train, c.testFraction(), c.seed(), strata);
    if (split.validation().isEmpty() || split.train().isEmpty()) {
      throw new IllegalArgumentException(
          "Cannot hold out " + c.testFraction() + " of " + train.size() + " training examples: one side would"
              + " be empty. Give more data, another --test-fraction, or a --test file.");
    }
    TextDatasets.writeJsonl(c.out().resolve(DataConfig.TEST_SPLIT), split.validation());
    return new Parts(split.train(), split.validation(), true);
  }

  /** Encodes the texts in order, each carrying its index in {@code texts} as its label. */
  public static ImmutableList<EncodedExample> encodeIndexed(WordPieceTokenizer tok, List<String> texts) {
    ImmutableList.Builder<EncodedExample> out = ImmutableList.builderWithExpectedSize(texts.size());
    for (int i = 0; i < texts.size(); i++) {
      EncodedExample e = tok.encode(texts.get(i));
      out.add(new EncodedExample(e.inputIds(), e.tokenTypeIds(), i));
    }
    return out.build();
  }

  /** The model's non-initializer inputs, in order: what every batch must feed. */
  public static ImmutableList<String> batchInputs(Model model) {
    Graph g = model.graph();
    return g.inputs().stream().filter(v -> !v.isInitializer()).map(Value::name).collect(ImmutableList.toImmutableList());
  }

  /** {@code b} as the token inputs among {@code inputs}; an input that is not one is an error. */
  public static Map<String, Tensor> tokens(Batch b, List<String> inputs) {
    Map<String, Tensor> f = new LinkedHashMap<>();
    long[] shape = b.shape();
    for (String name : inputs) {
      long[] data =
          switch (name) {
            case Evaluator.INPUT_IDS -> b.inputIds();
            case Evaluator.ATTENTION_MASK -> b.attentionMask();
            case Evaluator.TOKEN_TYPE_IDS -> b.tokenTypeIds();
            default ->
                throw new IllegalArgumentException(
                    "The model has an input '" + name + "' that text batches cannot fill; text"
                        + " models take input_ids, attention_mask and token_type_ids.");
          };
      f.put(name, DenseTensor.ofLongs(name, shape, data));
    }
    return f;
  }
}
